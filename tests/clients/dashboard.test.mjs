// The dashboard as a user meets it: a real headless Chromium (Debian's `chromium`, driven by the
// npm package puppeteer-core) opens the page of a 2-node local cluster and of a single node that
// needs an API key. It checks what the page shows (nodes with memory, links, a streamed chat
// answer, Stop, model output shown as text, the key prompt), that the page makes no request
// beyond its own server and weighs under 100 KB, and saves a screenshot to build/dashboard.png.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, rmSync } from "node:fs";
import path from "node:path";
import puppeteer from "puppeteer-core";
import { freePort, killAll, missingFiles, root, secretFile, sharedModel, startHerd } from "./herd_process.mjs";

const model = sharedModel("stories260K.gguf");
const chromium = [process.env.HERD_CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
  .find((p) => p && existsSync(p));
const missing =
  missingFiles(model) || (chromium ? "" : "no Chromium (install Debian's chromium package, or set HERD_CHROMIUM)");
const skip = missing || false;
if (missing) console.log(`# skipped: ${missing}`);

let browser;
let cluster;  // the 2-node cluster: { port, coordinator, worker }
const secrets = [];

before(async () => {
  if (missing) return;
  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    // CI runs as root, where Chromium's sandbox cannot start.
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
  });
  const secret = secretFile();
  secrets.push(secret.dir);
  const [api0, api1, c0, c1] = [await freePort(), await freePort(), await freePort(), await freePort()];
  // The worker first: the coordinator waits for it, then gives it its share of every layer
  // (tensor parallel: both nodes hold weights, even of a model this small).
  const common = ["--secret-file", secret.file, "--threads", "1"];
  await startHerd(["--name", "worker", "--api-port", String(api1), "--cluster-port", String(c1),
                   "--peers", `127.0.0.1:${c0}`, ...common], { waitFor: null });
  await startHerd(["-m", model, "--name", "coord", "--api-port", String(api0), "--cluster-port", String(c0),
                   "--peers", `127.0.0.1:${c1}`, "--wait-nodes", "2", "--parallel-mode", "tensor",
                   "--ctx", "512", ...common], { apiPort: api0, timeoutMs: 90_000 });
  cluster = { port: api0 };
});

after(async () => {
  if (browser) await browser.close();
  killAll();
  for (const dir of secrets) rmSync(dir, { recursive: true, force: true });
});

// A page on `port` that records every request it makes; `offsite` collects those that leave the
// server (there must be none: no CDN, no fonts, nothing fetched from elsewhere).
async function openPage(port, { width = 1280, height = 900 } = {}) {
  const page = await browser.newPage();
  await page.setViewport({ width, height });
  const origin = `http://127.0.0.1:${port}`;
  const offsite = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(origin + "/")) offsite.push(r.url());
  });
  const response = await page.goto(origin + "/", { waitUntil: "domcontentloaded" });
  assert.equal(response.status(), 200);
  return { page, offsite, bytes: (await response.buffer()).length };
}

// The text of the node element with this id, once it shows memory.
async function nodeText(page, id) {
  const sel = `[data-node-id="${id}"]`;
  await page.waitForFunction((s) => document.querySelector(s)?.querySelector(".memory")?.textContent,
                             { timeout: 20_000 }, sel);
  return page.$eval(sel, (e) => e.textContent);
}

// "1.2 MiB weights · … free / 22.58 GiB" -> the amount offered (in its unit).
function offered(text) {
  const m = /free \/ ([0-9.]+) (GiB|MiB)/.exec(text);
  assert.ok(m, `no memory figure in: ${text}`);
  return Number(m[1]);
}

async function sendMessage(page, text) {
  await page.locator('textarea[aria-label="Message"]').fill(text);
  await page.locator('::-p-aria([name="Send"][role="button"])').click();
}

// The latest answer's element once it has this data-state ("done", "stopped", "error").
async function answerState(page, state, timeout = 60_000) {
  await page.waitForFunction(
    (s) => [...document.querySelectorAll('[aria-live="polite"] .answer')].at(-1)?.dataset.state === s,
    { timeout }, state);
  return page.evaluate(() => [...document.querySelectorAll('[aria-live="polite"] .answer')].at(-1)
    .querySelector(".text").textContent);
}

test("the dashboard shows a 2-node cluster, streams a chat answer and stops one", { skip, timeout: 180_000 }, async () => {
  const { page, offsite, bytes } = await openPage(cluster.port);
  assert.ok(bytes < 100 * 1024, `the page weighs ${bytes} bytes`);

  // Both nodes, each with its memory, its bandwidth and the link between them.
  for (const id of ["coord", "worker"]) {
    const text = await nodeText(page, id);
    assert.ok(offered(text) > 0, `${id} shows no memory: ${text}`);
    assert.match(text, /[1-9][0-9.]* GB\/s/, `${id} shows no bandwidth: ${text}`);
    assert.match(text, /layers \d+–\d+/, `${id} holds no layers: ${text}`);
  }
  assert.match(await nodeText(page, "coord"), /coordinator/);
  await page.waitForSelector('line[data-link]', { timeout: 10_000 });
  const linkLabel = await page.$eval("#topology .link-label", (e) => e.textContent);
  assert.match(linkLabel, /ms · /);

  // The browser throttles its link to the server (8 kB/s), as a phone's might be: a chat answer
  // then visibly arrives in pieces, and a long one is still streaming when Stop is pressed.
  const cdp = await page.createCDPSession();
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions",
                 { offline: false, latency: 20, downloadThroughput: 8000, uploadThroughput: 1e6 });
  await page.evaluate(() => {
    window.__updates = 0;
    new MutationObserver(() => window.__updates++).observe(document.querySelector('[aria-live="polite"]'),
      { subtree: true, characterData: true, childList: true });
  });
  await page.locator("#max_tokens").fill("48");
  await sendMessage(page, "Once upon a time");
  const answer = await answerState(page, "done");
  assert.ok(answer.length > 0, "empty answer");
  assert.ok(await page.evaluate(() => window.__updates) > 3, "the answer did not stream in pieces");

  // The activity panel saw the tokens (its rate is over whole seconds: wait for the next one).
  await page.waitForFunction(() => Number(document.getElementById("tps").textContent) > 0 ||
    document.querySelector("#chart polyline").getAttribute("points").split(" ").some((p) => Number(p.split(",")[1]) < 68),
    { timeout: 10_000 });

  // Stop: pressed while an answer streams (the link is slowed further; a story can still end
  // early, so a few tries), the answer must stop growing, say so, and the next message must work.
  await cdp.send("Network.emulateNetworkConditions",
                 { offline: false, latency: 20, downloadThroughput: 2500, uploadThroughput: 1e6 });
  await page.locator('::-p-aria([name="New chat"][role="button"])').click();
  await page.locator("#max_tokens").fill("300");
  const stop = await page.waitForSelector('::-p-aria([name="Stop"][role="button"])');
  let pressed = false;
  for (let attempt = 0; attempt < 4 && !pressed; ++attempt) {
    await sendMessage(page, ["There was a dog", "Lily had a ball", "The sun was big", "Tom ran"][attempt]);
    await page.waitForFunction(
      () => [...document.querySelectorAll('[aria-live="polite"] .answer')].at(-1)?.querySelector(".text").textContent.length > 0,
      { timeout: 30_000 });
    if (await stop.evaluate((b) => b.disabled)) continue;  // that answer is over already
    await stop.click();
    pressed = true;
  }
  assert.ok(pressed, "every answer ended before Stop could be pressed: " +
            await page.$eval('[aria-live="polite"]', (t) => t.textContent));
  const stopped = await answerState(page, "stopped", 10_000);
  await new Promise((r) => setTimeout(r, 1000));
  const later = await page.evaluate(() => [...document.querySelectorAll('[aria-live="polite"] .answer')].at(-1)
    .querySelector(".text").textContent);
  assert.equal(later, stopped, "the answer kept growing after Stop");
  await cdp.send("Network.emulateNetworkConditions",
                 { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  assert.equal(await page.$eval("#send", (b) => b.disabled), false);
  await page.locator("#max_tokens").fill("32");
  await sendMessage(page, "The end");
  assert.ok((await answerState(page, "done")).length > 0);
  await page.screenshot({ path: path.join(root, "build", "dashboard.png"), fullPage: true });

  assert.deepEqual(offsite, []);
  await page.close();
});

test("model output is shown as text, never run as markup", { skip, timeout: 60_000 }, async () => {
  const { page, offsite } = await openPage(cluster.port);
  // The server's stream is replaced by one whose text is markup, as a model could write it.
  const evil = '<script>window.__injected = 1</script><img src="x" onerror="window.__injected = 2">**bold**';
  await page.setRequestInterception(true);
  page.on("request", (r) => {
    if (r.isInterceptResolutionHandled()) return;
    if (!r.url().endsWith("/v1/chat/completions")) return r.continue();
    const chunk = (content) => `data: ${JSON.stringify({ object: "chat.completion.chunk", choices: [{ index: 0, delta: { content } }] })}\n\n`;
    r.respond({ status: 200, contentType: "text/event-stream",
                body: chunk(evil.slice(0, 20)) + chunk(evil.slice(20)) + "data: [DONE]\n\n" });
  });
  await sendMessage(page, "Say something dangerous");
  assert.equal(await answerState(page, "done"), evil);
  assert.equal(await page.evaluate(() => window.__injected), undefined);
  assert.equal(await page.$$eval('[aria-live="polite"] img, [aria-live="polite"] script', (e) => e.length), 0);
  assert.deepEqual(offsite, []);
  await page.close();
});

test("on a phone-sized screen nothing runs off the side", { skip, timeout: 60_000 }, async () => {
  const { page } = await openPage(cluster.port, { width: 390, height: 844 });
  await nodeText(page, "worker");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the page is ${overflow} px wider than the screen`);
  await page.close();
});

test("a single node that needs an API key: the page asks for it once, then works", { skip, timeout: 90_000 }, async () => {
  const port = await freePort();
  const key = "test-key-" + Math.random().toString(36).slice(2);
  await startHerd(["-m", model, "--api-port", String(port), "--api-key", key, "--ctx", "512"], { apiPort: port });
  const { page, offsite } = await openPage(port);
  const keyInput = await page.waitForSelector('input[aria-label="API key"]', { visible: true, timeout: 10_000 });
  await keyInput.type(key);
  await page.locator('::-p-aria([name="Save key"][role="button"])').click();

  // Its real memory, threads and bandwidth: no zeros.
  const ids = await page.waitForFunction(() => {
    const found = [...document.querySelectorAll("[data-node-id]")].map((e) => e.dataset.nodeId);
    return found.length > 0 ? found : null;
  }, { timeout: 20_000 });
  const [id] = await ids.jsonValue();
  const text = await nodeText(page, id);
  assert.ok(offered(text) > 0, text);
  assert.match(text, /[1-9]\d* threads/, text);
  assert.match(text, /[1-9][0-9.]* GB\/s/, text);
  assert.match(text, /resident now [0-9.]+ (GiB|MiB)/, text);

  await sendMessage(page, "Hello");
  assert.ok((await answerState(page, "done")).length > 0);
  // Kept for the tab: a reload does not ask again.
  await page.reload({ waitUntil: "domcontentloaded" });
  await nodeText(page, id);
  assert.equal(await page.$eval("#keyform", (f) => f.classList.contains("shown")), false);
  assert.deepEqual(offsite, []);
  await page.close();
});
