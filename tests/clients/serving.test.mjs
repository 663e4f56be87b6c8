// The serving API through the official OpenAI client for Node (npm "openai"), against a real
// `herd serve` process: many requests at once, prompt caching as OpenAI reports it, and the 429
// a full server answers. Each server is started on a free port of 127.0.0.1 and killed by PID.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { freePort, killAll, missingFiles, sharedModel, startHerd } from "./herd_process.mjs";

const model = sharedModel("stories260K.gguf");
const missing = missingFiles(model);

// Starts `herd serve` with stories260K and waits (at most 30 s) for /health.
async function serve(extra) {
  const port = await freePort();
  await startHerd(["-m", model, "--api-port", String(port), ...extra], { apiPort: port, timeoutMs: 30_000 });
  return {
    port,
    client: new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 }),
  };
}

after(killAll);

// Eight different prompts (token ids of the 512-token vocabulary).
const prompts = Array.from({ length: 8 }, (_, i) => [
  1,
  ...Array.from({ length: 4 + 5 * i }, (_, j) => 260 + ((37 * i + 11 * j) % 240)),
]);

test("eight streams at once each get what they get alone", { skip: missing || false, timeout: 120_000 }, async () => {
  const { client } = await serve(["--parallel", "8", "--ctx", "512"]);
  const greedy = { model: "stories260K", max_tokens: 32, temperature: 0, ignore_eos: true };
  const alone = [];
  for (const prompt of prompts) {
    // cache_prompt false: computed afresh, not from what an earlier request left in the cache.
    const r = await client.completions.create({ ...greedy, prompt, cache_prompt: false });
    assert.equal(r.usage.completion_tokens, 32);
    alone.push(r.choices[0].text);
  }
  const together = await Promise.all(
    prompts.map(async (prompt) => {
      const stream = await client.completions.create({ ...greedy, prompt, cache_prompt: false, stream: true });
      let text = "";
      for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
      return text;
    }),
  );
  assert.deepEqual(together, alone);
});

test("the next turn of a chat reports its cached prompt tokens", { skip: missing || false, timeout: 60_000 }, async () => {
  const { client } = await serve(["--parallel", "2", "--ctx", "512"]);
  const messages = [{ role: "user", content: "Once upon a time there was a little girl named Lily." }];
  const first = await client.chat.completions.create({ model: "stories260K", messages, max_tokens: 24, temperature: 0 });
  assert.equal(first.usage.prompt_tokens_details.cached_tokens, 0);
  messages.push({ role: "assistant", content: first.choices[0].message.content });
  messages.push({ role: "user", content: "What did she do next?" });
  const second = await client.chat.completions.create({ model: "stories260K", messages, max_tokens: 8, temperature: 0 });
  const cached = second.usage.prompt_tokens_details.cached_tokens;
  assert.ok(cached >= first.usage.prompt_tokens - 1, `cached ${cached} of the first turn's ${first.usage.prompt_tokens}`);
  assert.ok(cached < second.usage.prompt_tokens);
});

test("a full server answers 429 with Retry-After, and serves again after", { skip: missing || false, timeout: 60_000 }, async () => {
  const { client } = await serve(["--parallel", "1", "--max-queue", "0", "--ctx", "16384"]);
  const long = client.completions.create({ model: "stories260K", prompt: [1], max_tokens: 16000, ignore_eos: true, stream: true });
  const stream = await long;
  const iterator = stream[Symbol.asyncIterator]();
  await iterator.next(); // the only slot is now taken
  await assert.rejects(
    client.completions.create({ model: "stories260K", prompt: [1, 300], max_tokens: 4 }),
    (err) => {
      assert.ok(err instanceof OpenAI.RateLimitError, String(err));
      assert.equal(err.status, 429);
      assert.ok(Number(err.headers.get("retry-after")) >= 1);
      return true;
    },
  );
  stream.controller.abort(); // the client leaves: its slot frees
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const r = await client.completions.create({ model: "stories260K", prompt: [1, 300], max_tokens: 4, ignore_eos: true });
      assert.equal(r.usage.completion_tokens, 4);
      break;
    } catch (err) {
      if (!(err instanceof OpenAI.RateLimitError) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
});
