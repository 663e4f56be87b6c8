// Starting real `herd serve` processes for the client tests: free ports on 127.0.0.1, waiting for
// readiness, and killing every process started, by PID, when the test file ends.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { createSocket } from "node:dgram";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, "../..");
export const herd = process.env.HERD_BINARY ?? path.join(root, "build", "herd");
export const sharedModel = (name) => path.resolve(root, "..", "shared", "models", name);

// Why a test that needs herd and these files cannot run ("" when it can).
export function missingFiles(...files) {
  for (const f of [herd, ...files]) if (!existsSync(f)) return `no ${f}`;
  return "";
}

// A port free for TCP and UDP on 127.0.0.1, at random below the kernel's ephemeral range
// (32768 up): a port from listen(0) could be handed to another test's listen(0) before the
// process we start binds it.
function bindable(port) {
  return new Promise((resolve) => {
    const tcp = createServer();
    tcp.once("error", () => resolve(false));
    tcp.listen(port, "127.0.0.1", () => {
      const udp = createSocket("udp4");
      udp.once("error", () => tcp.close(() => resolve(false)));
      udp.bind(port, "127.0.0.1", () => udp.close(() => tcp.close(() => resolve(true))));
    });
  });
}

export async function freePort() {
  for (let attempt = 0; attempt < 200; ++attempt) {
    const port = 20768 + Math.floor(Math.random() * 12000);
    if (await bindable(port)) return port;
  }
  throw new Error("no free port on 127.0.0.1");
}

const children = [];

// Starts `herd serve <args>`; with `waitFor` (a path on apiPort), waits at most `timeoutMs` for it
// to answer 200. Returns the child and its stderr so far.
export async function startHerd(args, { apiPort, waitFor = "/health", timeoutMs = 60_000, headers = {} } = {}) {
  const child = spawn(herd, ["serve", ...args], { stdio: ["ignore", "ignore", "pipe"] });
  const proc = { child, log: "" };
  child.stderr.on("data", (d) => (proc.log += d));
  children.push(child);
  if (!waitFor) return proc;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`herd serve exited: ${proc.log}`);
    try {
      const r = await fetch(`http://127.0.0.1:${apiPort}${waitFor}`, { headers });
      if (r.status === 200) return proc;
    } catch {}
    if (Date.now() > deadline) throw new Error(`herd serve did not get ready: ${proc.log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// A cluster secret file (mode 600) in a fresh temporary directory.
export function secretFile() {
  const dir = mkdtempSync(path.join(tmpdir(), "herd-test-"));
  const file = path.join(dir, "secret");
  writeFileSync(file, randomBytes(32).toString("hex"), { mode: 0o600 });
  return { dir, file };
}

export function killAll() {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
}
