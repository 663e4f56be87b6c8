#!/usr/bin/env node
// The healing figures of the closing notes (issue "A cluster that heals"): a 3-node local cluster
// (any two of them hold the model, one does not) streams a greedy answer of N tokens; a worker
// that holds layers is killed with SIGKILL at a random moment of each trial; the answer must go on
// and equal the uninterrupted run's. Prints, per trial, whether the text was identical and how
// long the stream paused, then the medians. The killed worker is restarted between trials.
//
// Usage: node scripts/heal-trials.mjs [TRIALS] [TOKENS]   (default 20 trials of 256 tokens)
// Model: $HERD_BENCH_MODELS/1b-q4_0.gguf (or /tmp), written by `herd synth` when missing.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync, chmodSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const herd = join(root, "build", "herd");
const trials = Number(process.argv[2] ?? 20);
const tokens = Number(process.argv[3] ?? 256);
const models = process.env.HERD_BENCH_MODELS ?? "/tmp";
const model = join(models, "1b-q4_0.gguf");
if (!existsSync(model)) {
  const vocab = join(root, "..", "shared", "models", "stories260K.gguf");
  execFileSync(herd, ["synth", "-o", model, "--type", "q4_0",
                      ...(existsSync(vocab) ? ["--vocab-from", vocab] : [])], { stdio: "inherit" });
}

const dir = mkdtempSync(join(tmpdir(), "herd-heal-"));
const secret = join(dir, "secret");
writeFileSync(secret, "heal-trials-secret-0123456789abcdef\n");
chmodSync(secret, 0o600);
const base = 20000 + Math.floor(Math.random() * 20000);
const nodes = {
  c: { api: base, cluster: base + 1 },
  w1: { api: base + 2, cluster: base + 3 },
  w2: { api: base + 4, cluster: base + 5 },
};
const limit = "350M";  // the model is 549 MB: any two nodes hold it with their caches, one does not
const procs = {};

function start(name) {
  const n = nodes[name];
  const args = ["--log", "warn", "serve", "--name", name, "--api-port", n.api, "--cluster-port",
                n.cluster, "--secret-file", secret, "--data-dir", join(dir, "data-" + name),
                "-t", "1", "--memory-limit", limit];
  if (name === "c") {
    args.push("-m", model, "--wait-nodes", "3", "--ctx", "512", "--parallel", "2",
              "--parallel-mode", "pipeline", "--peers",
              `127.0.0.1:${nodes.w1.cluster},127.0.0.1:${nodes.w2.cluster}`);
  } else {
    args.push("--peers", `127.0.0.1:${nodes.c.cluster}`);
  }
  procs[name] = spawn(herd, args.map(String), { stdio: "ignore" });
}
function stopAll() {
  for (const p of Object.values(procs)) p.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
}
process.on("exit", stopAll);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function view() {
  return (await fetch(`http://127.0.0.1:${nodes.c.api}/v1/cluster`)).json();
}

// Streams a greedy completion; onPiece(k) after the k-th piece. {text, gaps (s), error}.
async function stream(onPiece) {
  const r = await fetch(`http://127.0.0.1:${nodes.c.api}/v1/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: "Once upon a time", max_tokens: tokens, temperature: 0,
                           ignore_eos: true, stream: true, cache_prompt: false }),
  });
  if (r.status !== 200) return { text: "", gaps: [], error: `HTTP ${r.status}: ${await r.text()}` };
  const decoder = new TextDecoder();
  let buffer = "", text = "", pieces = 0, last = 0, error = "";
  const gaps = [];
  for await (const chunk of r.body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
      const j = JSON.parse(event.slice(6));
      if (j.error) error = JSON.stringify(j.error);
      const piece = j.choices?.[0]?.text ?? "";
      if (!piece) continue;
      const now = performance.now();
      if (pieces > 0) gaps.push((now - last) / 1000);
      last = now;
      text += piece;
      ++pieces;
      onPiece?.(pieces);
    }
  }
  return { text, gaps, error };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};

start("w1");
start("w2");
start("c");
for (let i = 0; ; ++i) {
  try {
    if ((await fetch(`http://127.0.0.1:${nodes.c.api}/health`)).status === 200) break;
  } catch {}
  if (i > 600) throw new Error("the cluster did not become ready");
  await sleep(200);
}
const cpu = execFileSync("sh", ["-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-"])
  .toString().trim();
console.log(`cpu: ${cpu}; model ${model}; ${tokens} tokens per answer; ${trials} trials`);
const reference = await stream();
if (reference.error) throw new Error(reference.error);
const normalGap = median(reference.gaps);
console.log(`uninterrupted: ${reference.text.length} characters, median gap ${(normalGap * 1e3).toFixed(1)} ms`);

const results = [];
for (let t = 0; t < trials; ++t) {
  const stages = (await view()).placement.stages.map((s) => s.node_id).filter((id) => id !== "c");
  const victim = stages[Math.floor(Math.random() * stages.length)];
  const at = 5 + Math.floor(Math.random() * (tokens - 20));
  const run = await stream((k) => { if (k === at) procs[victim].kill("SIGKILL"); });
  const pause = Math.max(...run.gaps);
  const same = run.text === reference.text && !run.error;
  results.push({ same, pause });
  console.log(`trial ${t + 1}: killed ${victim} after ${at} pieces: ${same ? "identical" : "DIFFERENT"}` +
              `, paused ${pause.toFixed(2)} s${run.error ? ", error " + run.error : ""}`);
  // The worker comes back before the next trial, and the cluster takes it in.
  await sleep(300);
  start(victim);
  for (let i = 0; i < 100; ++i) {
    const v = await view();
    if (v.members.some((m) => m.id === victim)) break;
    await sleep(100);
  }
  await sleep(1500);
}
const identical = results.filter((r) => r.same).length;
const pauses = results.map((r) => r.pause);
console.log(`identical: ${identical} of ${results.length}; stream paused: median ${median(pauses).toFixed(2)} s, ` +
            `max ${Math.max(...pauses).toFixed(2)} s`);
process.exit(0);
