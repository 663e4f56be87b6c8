// Tool calls and structured output through the official OpenAI client for Node, against a real
// `herd serve` of the golden qwen3 model. Its weights are random: whatever structure the answers
// have comes from constrained sampling, never from luck — so every answer is checked against its
// JSON schema (ajv), over several sampled answers.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import Ajv from "ajv";
import OpenAI from "openai";
import { freePort, killAll, missingFiles, root, startHerd } from "./herd_process.mjs";

const model = path.resolve(root, "..", "shared", "golden", "qwen3-f16.gguf");
const missing = missingFiles(model);
const skip = missing || false;
if (missing) console.log(`# skipped: ${missing}`);

let client;
before(async () => {
  if (missing) return;
  const port = await freePort();
  // The golden model was made with a 512-token context; tool descriptions need more room.
  await startHerd(["-m", model, "--api-port", String(port), "--parallel", "4", "--ctx", "2048"], { apiPort: port });
  client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 });
});
after(killAll);

const ajv = new Ajv({ strict: false });

const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: {
      type: "object",
      properties: {
        city: { type: "string", minLength: 1, maxLength: 24 },
        unit: { enum: ["celsius", "fahrenheit"] },
        days: { type: "integer" },
      },
      required: ["city", "unit"],
      additionalProperties: false,
    },
  },
};
const clock = { type: "function", function: { name: "get_time", parameters: { type: "object", properties: {} } } };

test("a forced named tool call has arguments that validate against its schema", { skip, timeout: 120_000 }, async () => {
  const validate = ajv.compile(weather.function.parameters);
  for (let seed = 1; seed <= 6; ++seed) {
    const r = await client.chat.completions.create({
      model: "qwen3-f16",
      messages: [{ role: "user", content: "What is the weather in Paris?" }],
      tools: [weather, clock],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      temperature: 1.0,
      seed,
      max_tokens: 100,
    });
    const choice = r.choices[0];
    assert.equal(choice.finish_reason, "tool_calls");
    assert.equal(choice.message.tool_calls.length, 1);
    const call = choice.message.tool_calls[0];
    assert.equal(call.type, "function");
    assert.equal(call.function.name, "get_weather");
    const args = JSON.parse(call.function.arguments);
    assert.ok(validate(args), JSON.stringify(validate.errors) + " " + call.function.arguments);
  }
});

test("response_format json_schema: the content parses and validates", { skip, timeout: 120_000 }, async () => {
  const schema = {
    type: "object",
    properties: {
      title: { type: "string", maxLength: 30 },
      rating: { type: "number" },
      tags: { type: "array", items: { type: "string", maxLength: 8 }, minItems: 1, maxItems: 3 },
      kind: { anyOf: [{ type: "null" }, { enum: ["book", "film"] }] },
    },
    required: ["title", "rating", "tags", "kind"],
    additionalProperties: false,
  };
  const validate = ajv.compile(schema);
  for (let seed = 1; seed <= 6; ++seed) {
    const r = await client.chat.completions.create({
      model: "qwen3-f16",
      messages: [{ role: "user", content: "Review a story." }],
      response_format: { type: "json_schema", json_schema: { name: "review", schema, strict: true } },
      temperature: 1.0,
      seed,
      max_tokens: 120,
    });
    const text = r.choices[0].message.content;
    const doc = JSON.parse(text);
    assert.ok(validate(doc), JSON.stringify(validate.errors) + " " + text);
  }
  // json_object: any object.
  const r = await client.chat.completions.create({
    model: "qwen3-f16",
    messages: [{ role: "user", content: "JSON please" }],
    response_format: { type: "json_object" },
    temperature: 1.0,
    seed: 7,
    max_tokens: 40,
  });
  const doc = JSON.parse(r.choices[0].message.content);
  assert.equal(typeof doc, "object");
  assert.ok(doc !== null && !Array.isArray(doc));
});

test("streamed: a required tool call arrives as tool_calls deltas; the result goes back", { skip, timeout: 120_000 }, async () => {
  const validate = ajv.compile(weather.function.parameters);
  const stream = await client.chat.completions.create({
    model: "qwen3-f16",
    messages: [{ role: "user", content: "Weather in Oslo?" }],
    tools: [weather],
    tool_choice: "required",
    stream: true,
    temperature: 0.8,
    seed: 3,
    max_tokens: 100,
  });
  const calls = [];
  let finish = null;
  for await (const chunk of stream) {
    const choice = chunk.choices[0];
    if (!choice) continue;
    for (const d of choice.delta.tool_calls ?? []) {
      calls[d.index] ??= { id: "", name: "", arguments: "" };
      if (d.id) calls[d.index].id = d.id;
      if (d.function?.name) calls[d.index].name += d.function.name;
      if (d.function?.arguments) calls[d.index].arguments += d.function.arguments;
    }
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  assert.equal(finish, "tool_calls");
  assert.equal(calls.length, 1);
  assert.equal(calls[0].name, "get_weather");
  assert.ok(validate(JSON.parse(calls[0].arguments)), calls[0].arguments);

  // The call and its result fed back: the model answers in text (tools still offered, auto).
  const r = await client.chat.completions.create({
    model: "qwen3-f16",
    messages: [
      { role: "user", content: "Weather in Oslo?" },
      { role: "assistant", content: null, tool_calls: [{ id: calls[0].id, type: "function", function: { name: calls[0].name, arguments: calls[0].arguments } }] },
      { role: "tool", tool_call_id: calls[0].id, content: '{"temperature": 3, "sky": "snow"}' },
    ],
    tools: [weather],
    tool_choice: "none",
    temperature: 0,
    max_tokens: 16,
  });
  assert.equal(r.choices[0].message.tool_calls, undefined);
  assert.equal(typeof r.choices[0].message.content, "string");
});

test("malformed tools and schemas get OpenAI's 400 naming the field; the server goes on", { skip, timeout: 60_000 }, async () => {
  const bad = async (body, param) => {
    try {
      await client.chat.completions.create({ model: "qwen3-f16", messages: [{ role: "user", content: "x" }], max_tokens: 4, ...body });
      assert.fail("accepted");
    } catch (err) {
      assert.ok(err instanceof OpenAI.BadRequestError, String(err));
      assert.equal(err.status, 400);
      assert.match(err.error?.param ?? err.param ?? "", param);
    }
  };
  await bad({ tools: [{ type: "function" }] }, /tools\[0\]/);
  await bad({ tools: [weather], tool_choice: { type: "function", function: { name: "nope" } } }, /tool_choice/);
  await bad({ response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "object", properties: { n: { type: "integer", minimum: 2 } } } } } },
            /response_format/);
  await bad({ response_format: { type: "yaml" } }, /response_format/);
  await bad({ tools: [weather], tool_choice: "required", max_tokens: 10 }, /max_tokens/);  // too few for any call
  const ok = await client.chat.completions.create({ model: "qwen3-f16", messages: [{ role: "user", content: "x" }], max_tokens: 4 });
  assert.equal(ok.choices.length, 1);
});
