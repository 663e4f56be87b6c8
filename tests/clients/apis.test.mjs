// The Ollama, Anthropic Messages and OpenAI Responses APIs through their official clients from
// npm (`ollama`, `@anthropic-ai/sdk`, `openai`), unchanged, against a real `herd serve` of the
// golden qwen3 model (random weights: any structure comes from constrained sampling). Each API's
// malformed requests must get that API's own 4xx error shape, and the server must go on serving.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import Ajv from "ajv";
import Anthropic from "@anthropic-ai/sdk";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { freePort, killAll, missingFiles, root, startHerd } from "./herd_process.mjs";

const model = path.resolve(root, "..", "shared", "golden", "qwen3-f16.gguf");
const missing = missingFiles(model);
const skip = missing || false;
if (missing) console.log(`# skipped: ${missing}`);

const key = "test-key-apis";
let base;
before(async () => {
  if (missing) return;
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  // A key is required: each client sends it its own way (Bearer, x-api-key).
  await startHerd(["-m", model, "--api-port", String(port), "--parallel", "4", "--ctx", "2048", "--api-key", key],
                  { apiPort: port });
});
after(killAll);

const ajv = new Ajv({ strict: false });
const weatherSchema = {
  type: "object",
  properties: { city: { type: "string", minLength: 1, maxLength: 20 }, unit: { enum: ["celsius", "fahrenheit"] } },
  required: ["city", "unit"],
  additionalProperties: false,
};

test("ollama: list, show, version, chat, generate, streaming and format", { skip, timeout: 120_000 }, async () => {
  const ollama = new Ollama({ host: base, headers: { Authorization: `Bearer ${key}` } });
  const { models } = await ollama.list();
  assert.equal(models.length, 1);
  assert.equal(models[0].name, "qwen3-f16:latest");
  assert.equal(models[0].details.family, "qwen3");
  assert.ok(models[0].size > 0);
  const shown = await ollama.show({ model: "qwen3-f16" });
  assert.equal(shown.model_info["qwen3.context_length"], 2048);
  assert.match((await ollama.version()).version, /^\d+\.\d+\.\d+$/);

  const chat = await ollama.chat({ model: "qwen3-f16", messages: [{ role: "user", content: "Hi" }], stream: false,
                                   options: { num_predict: 8, temperature: 0 } });
  assert.equal(chat.done, true);
  assert.equal(chat.message.role, "assistant");
  assert.ok(chat.eval_count <= 8);
  assert.equal(chat.done_reason, chat.eval_count === 8 ? "length" : "stop");

  const gen = await ollama.generate({ model: "qwen3-f16:latest", prompt: "Once", stream: false, options: { num_predict: 6, seed: 1 } });
  assert.equal(gen.done, true);
  assert.equal(typeof gen.response, "string");

  // Streamed (Ollama's default): pieces, then one last part with the counts.
  let parts = 0;
  let text = "";
  let last;
  for await (const part of await ollama.chat({ model: "qwen3-f16", messages: [{ role: "user", content: "Tell" }], stream: true,
                                                options: { num_predict: 12, temperature: 0 } })) {
    parts++;
    text += part.message.content;
    last = part;
  }
  assert.ok(parts >= 2, `only ${parts} parts`);  // pieces (tokens that come together, together), the last
  assert.equal(last.done, true);
  const same = await ollama.chat({ model: "qwen3-f16", messages: [{ role: "user", content: "Tell" }], stream: false,
                                   options: { num_predict: 12, temperature: 0 } });
  assert.equal(text, same.message.content);  // greedy: streamed or not, the same text
  assert.equal(last.eval_count, same.eval_count);

  // format: a JSON schema, enforced.
  const validate = ajv.compile(weatherSchema);
  for (let seed = 1; seed <= 4; ++seed) {
    const r = await ollama.chat({ model: "qwen3-f16", messages: [{ role: "user", content: "Weather?" }], format: weatherSchema,
                                  options: { num_predict: 80, seed, temperature: 1 } });
    const doc = JSON.parse(r.message.content);
    assert.ok(validate(doc), r.message.content);
  }
  const json = await ollama.generate({ model: "qwen3-f16", prompt: "JSON", format: "json", options: { num_predict: 30, seed: 2, temperature: 1 } });
  assert.equal(typeof JSON.parse(json.response), "object");

  // Ollama's error shape: {"error": "..."} with a 4xx.
  await assert.rejects(ollama.chat({ model: "qwen3-f16", messages: "hello" }),
                       (e) => e.status_code === 400 && typeof e.error === "string");
  await assert.rejects(ollama.chat({ model: "llama9:70b", messages: [{ role: "user", content: "x" }] }),
                       (e) => e.status_code === 404 && /does not exist/.test(e.error));
});

test("anthropic: messages.create, streaming, and a tool_use round trip", { skip, timeout: 120_000 }, async () => {
  const anthropic = new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0 });
  const msg = await anthropic.messages.create({
    model: "qwen3-f16",
    max_tokens: 10,
    system: "You are terse.",
    messages: [{ role: "user", content: "Hello" }, { role: "assistant", content: "Hi." }, { role: "user", content: [{ type: "text", text: "More" }] }],
    temperature: 0,
  });
  assert.equal(msg.type, "message");
  assert.equal(msg.role, "assistant");
  assert.equal(msg.content[0].type, "text");
  assert.equal(msg.stop_reason, "max_tokens");
  assert.equal(msg.usage.output_tokens, 10);
  assert.ok(msg.usage.input_tokens > 0);

  // Streaming: the SDK assembles the events into the same message.
  const stream = anthropic.messages.stream({ model: "qwen3-f16", max_tokens: 10, temperature: 0,
                                             system: "You are terse.",
                                             messages: [{ role: "user", content: "Hello" }, { role: "assistant", content: "Hi." }, { role: "user", content: "More" }] });
  const kinds = new Set();
  let deltas = "";
  stream.on("streamEvent", (e) => kinds.add(e.type));
  stream.on("text", (t) => (deltas += t));
  const final = await stream.finalMessage();
  for (const kind of ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"])
    assert.ok(kinds.has(kind), `no ${kind} event`);
  assert.equal(final.content[0].text, msg.content[0].text);  // greedy: the same text
  assert.equal(deltas, msg.content[0].text);

  // tool_use: forced, its input validates; then the result goes back and the model answers.
  const validate = ajv.compile(weatherSchema);
  const tools = [{ name: "get_weather", description: "Weather of a city", input_schema: weatherSchema }];
  const asked = await anthropic.messages.create({
    model: "qwen3-f16", max_tokens: 100, temperature: 1, tools, tool_choice: { type: "tool", name: "get_weather" },
    messages: [{ role: "user", content: "Weather in Oslo?" }],
  });
  assert.equal(asked.stop_reason, "tool_use");
  const use = asked.content.find((b) => b.type === "tool_use");
  assert.ok(use, JSON.stringify(asked.content));
  assert.equal(use.name, "get_weather");
  assert.ok(validate(use.input), JSON.stringify(use.input));
  const answered = await anthropic.messages.create({
    model: "qwen3-f16", max_tokens: 12, temperature: 0, tools, tool_choice: { type: "none" },
    messages: [
      { role: "user", content: "Weather in Oslo?" },
      { role: "assistant", content: asked.content },
      { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: "3 degrees, snow" }] },
    ],
  });
  assert.equal(answered.content[0].type, "text");
  assert.notEqual(answered.stop_reason, "tool_use");

  // Anthropic's error shape.
  await assert.rejects(anthropic.messages.create({ model: "qwen3-f16", messages: [{ role: "user", content: "x" }] }),
                       (e) => e instanceof Anthropic.BadRequestError && e.error?.type === "error" &&
                              e.error?.error?.type === "invalid_request_error");
  await assert.rejects(new Anthropic({ baseURL: base, apiKey: "wrong", maxRetries: 0 }).messages.create(
                         { model: "qwen3-f16", max_tokens: 4, messages: [{ role: "user", content: "x" }] }),
                       (e) => e instanceof Anthropic.AuthenticationError && e.error?.error?.type === "authentication_error");
});

test("openai responses: create, streaming events, function tools and text.format", { skip, timeout: 120_000 }, async () => {
  const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });
  const r = await openai.responses.create({ model: "qwen3-f16", input: "Once upon a time", instructions: "Tell a story.",
                                            max_output_tokens: 10, temperature: 0 });
  assert.equal(r.object, "response");
  // Cut by max_output_tokens, or ended by the model before it.
  if (r.usage.output_tokens === 10) {
    assert.equal(r.status, "incomplete");
    assert.equal(r.incomplete_details.reason, "max_output_tokens");
  } else {
    assert.equal(r.status, "completed");
    assert.ok(r.usage.output_tokens < 10);
  }
  assert.equal(typeof r.output_text, "string");

  const events = [];
  let text = "";
  for await (const e of await openai.responses.create({ model: "qwen3-f16", input: "Once upon a time", instructions: "Tell a story.",
                                                        max_output_tokens: 10, temperature: 0, stream: true })) {
    events.push(e.type);
    if (e.type === "response.output_text.delta") text += e.delta;
    if (e.type === "response.incomplete" || e.type === "response.completed") assert.equal(e.response.output_text ?? text, text);
  }
  assert.equal(events[0], "response.created");
  assert.ok(events.includes("response.output_text.delta"));
  assert.ok(events.at(-1) === "response.incomplete" || events.at(-1) === "response.completed", events.at(-1));
  assert.equal(text, r.output_text);  // greedy: the same text

  const validate = ajv.compile(weatherSchema);
  const call = await openai.responses.create({
    model: "qwen3-f16", input: [{ role: "user", content: "Weather in Rome?" }], max_output_tokens: 100,
    tools: [{ type: "function", name: "get_weather", parameters: weatherSchema, strict: true }],
    tool_choice: { type: "function", name: "get_weather" },
  });
  const fc = call.output.find((o) => o.type === "function_call");
  assert.ok(fc, JSON.stringify(call.output));
  assert.ok(validate(JSON.parse(fc.arguments)), fc.arguments);
  const back = await openai.responses.create({
    model: "qwen3-f16", max_output_tokens: 8, temperature: 0,
    input: [{ role: "user", content: "Weather in Rome?" }, fc, { type: "function_call_output", call_id: fc.call_id, output: "sunny" }],
  });
  assert.equal(back.output[0].type, "message");

  const shaped = await openai.responses.create({
    model: "qwen3-f16", input: "weather", max_output_tokens: 100, temperature: 1,
    text: { format: { type: "json_schema", name: "weather", schema: weatherSchema, strict: true } },
  });
  assert.ok(validate(JSON.parse(shaped.output_text)), shaped.output_text);

  await assert.rejects(openai.responses.create({ model: "qwen3-f16", input: "x", previous_response_id: "resp_1" }),
                       (e) => e instanceof OpenAI.BadRequestError && e.param === "previous_response_id");
  // After all of that, the server still answers.
  const ok = await openai.chat.completions.create({ model: "qwen3-f16", messages: [{ role: "user", content: "x" }], max_tokens: 3 });
  assert.equal(ok.choices.length, 1);
});
