// The Ollama, Anthropic and Responses adapters: requests mapped onto the one request model,
// malformed ones refused with 400, answers in each API's shapes.
#include <gtest/gtest.h>

#include "api/anthropic_api.h"
#include "api/ollama_api.h"
#include "api/responses_api.h"

namespace herd::api {
namespace {

using nlohmann::json;

int status_of(auto&& parse) {
  try {
    parse();
  } catch (const ApiError& e) {
    return e.status;
  }
  return 200;
}

TEST(OllamaApi, MapsOptionsFormatAndMessages) {
  const auto r = parse_ollama_chat(R"({"model":"m:latest","messages":[{"role":"user","content":"hi"}],
      "options":{"temperature":0.2,"num_predict":7,"seed":5,"stop":["x"],"top_k":3},"format":"json"})");
  EXPECT_EQ(r.model, "m:latest");
  EXPECT_TRUE(r.stream);  // Ollama streams unless told not to
  EXPECT_EQ(r.params.max_tokens, 7);
  EXPECT_FLOAT_EQ(r.params.sampling.temperature, 0.2f);
  EXPECT_EQ(r.params.sampling.seed, 5u);
  EXPECT_EQ(r.params.sampling.top_k, 3);
  EXPECT_EQ(r.params.stop, std::vector<std::string>{"x"});
  ASSERT_TRUE(r.output_schema);
  const auto g = parse_ollama_generate(R"({"prompt":"p","system":"s","stream":false,"options":{"num_predict":-1}})");
  EXPECT_FALSE(g.stream);
  EXPECT_LT(g.params.max_tokens, 0);  // until the context is full
  ASSERT_EQ(g.messages.size(), 2u);
  EXPECT_EQ(g.messages[0].role, "system");
  const auto raw = parse_ollama_generate(R"({"prompt":"<s>p","raw":true})");
  EXPECT_EQ(raw.kind, RequestKind::kCompletion);
  EXPECT_TRUE(ollama_is_load_only(R"({"model":"m"})"));
  for (const char* body : {"[]", R"({"messages":"x"})", R"({"messages":[],"format":3})",
                           R"({"messages":[{"role":"user","content":"a","images":["AA"]}]})",
                           R"({"messages":[{"role":"user","content":"a"}],"options":{"num_predict":"x"}})"})
    EXPECT_EQ(status_of([&] { parse_ollama_chat(body); }), 400) << body;
}

TEST(OllamaApi, AnswersAreNdjsonLinesEndingWithTheCounts) {
  OllamaFormat chat(true, "m");
  const json piece = json::parse(chat.piece("he"));
  EXPECT_EQ(piece["message"]["content"], "he");
  EXPECT_EQ(piece["done"], false);
  Answer a{"hello", {}, "length"};
  engine::GenerationStats stats;
  stats.prompt_tokens = 3;
  stats.generated_tokens = 2;
  const std::string end = chat.end(a, stats, false);
  const json last = json::parse(end);
  EXPECT_EQ(last["done"], true);
  EXPECT_EQ(last["done_reason"], "length");
  EXPECT_EQ(last["eval_count"], 2);
  EXPECT_EQ(last["prompt_eval_count"], 3);
  const json whole = OllamaFormat(false, "m").whole(a, stats);
  EXPECT_EQ(whole["response"], "hello");
  EXPECT_EQ(json::parse(chat.stream_error("boom"))["error"], "boom");
}

TEST(AnthropicApi, MapsBlocksToolsAndChoices) {
  const auto r = parse_anthropic_messages(R"({"model":"m","max_tokens":9,"system":[{"type":"text","text":"S"}],
      "stop_sequences":["END"],"messages":[
        {"role":"user","content":"q"},
        {"role":"assistant","content":[{"type":"text","text":"let me"},{"type":"tool_use","id":"t1","name":"f","input":{"a":1}}]},
        {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"42"}]}]}],
      "tools":[{"name":"f","input_schema":{"type":"object","properties":{"a":{"type":"integer"}}}}],
      "tool_choice":{"type":"tool","name":"f"}})");
  EXPECT_EQ(r.params.max_tokens, 9);
  EXPECT_EQ(r.params.stop, std::vector<std::string>{"END"});
  ASSERT_EQ(r.messages_json.size(), 4u);
  EXPECT_EQ(r.messages_json[0]["content"], "S");
  EXPECT_EQ(r.messages_json[2]["tool_calls"][0]["function"]["arguments"]["a"], 1);
  EXPECT_EQ(r.messages_json[3]["role"], "tool");
  EXPECT_EQ(r.messages_json[3]["tool_call_id"], "t1");
  EXPECT_TRUE(r.forced_call());
  for (const char* body :
       {R"({"messages":[{"role":"user","content":"x"}]})",                 // no max_tokens
        R"({"max_tokens":5,"messages":[]})",                                 // no messages
        R"({"max_tokens":5,"messages":[{"role":"robot","content":"x"}]})",   // role
        R"({"max_tokens":5,"messages":[{"role":"user","content":[{"type":"image"}]}]})",
        R"({"max_tokens":5,"temperature":1.5,"messages":[{"role":"user","content":"x"}]})",
        R"({"max_tokens":5,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"maybe"}})"})
    EXPECT_EQ(status_of([&] { parse_anthropic_messages(body); }), 400) << body;
}

TEST(AnthropicApi, StreamsItsEventSequenceAndWholeMessages) {
  AnthropicFormat f("msg_1", "m");
  f.set_prompt_tokens(4);
  const std::string start = f.start(false);
  EXPECT_NE(start.find("event: message_start\n"), std::string::npos);
  EXPECT_NE(start.find("event: content_block_start\n"), std::string::npos);
  EXPECT_NE(f.piece("hi").find(R"("type":"text_delta")"), std::string::npos);
  engine::GenerationStats stats;
  stats.generated_tokens = 2;
  Answer call{"", {{"f", nlohmann::ordered_json{{"a", 1}}}}, "tool_calls"};
  const std::string end = f.end(call, stats, true);
  EXPECT_NE(end.find(R"("type":"input_json_delta")"), std::string::npos);
  EXPECT_NE(end.find(R"("stop_reason":"tool_use")"), std::string::npos);
  EXPECT_LT(end.find("event: message_delta"), end.find("event: message_stop"));
  const json whole = f.whole(call, stats);
  EXPECT_EQ(whole["content"][0]["type"], "tool_use");
  EXPECT_EQ(whole["content"][0]["input"]["a"], 1);
  EXPECT_EQ(json::parse(f.stream_error("x").substr(f.stream_error("x").find("data: ") + 6))["error"]["type"],
            "api_error");
  EXPECT_EQ(error_json(ErrorStyle::kAnthropic, 429, "busy")["error"]["type"], "rate_limit_error");
}

TEST(ResponsesApi, MapsInputItemsAndFormats) {
  const auto r = parse_responses_request(R"({"input":[{"role":"developer","content":"D"},
      {"role":"user","content":[{"type":"input_text","text":"q"}]},
      {"type":"function_call","call_id":"c","name":"f","arguments":"{\"a\":1}"},
      {"type":"function_call_output","call_id":"c","output":"done"}],
      "instructions":"I","max_output_tokens":11,
      "tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],
      "text":{"format":{"type":"json_schema","name":"n","schema":{"type":"object"}}}})");
  EXPECT_EQ(r.params.max_tokens, 11);
  ASSERT_EQ(r.messages_json.size(), 5u);
  EXPECT_EQ(r.messages_json[0]["content"], "I");
  EXPECT_EQ(r.messages_json[1]["role"], "system");
  EXPECT_EQ(r.messages_json[3]["tool_calls"][0]["function"]["name"], "f");
  EXPECT_EQ(r.messages_json[4]["role"], "tool");
  EXPECT_TRUE(r.reads_calls());
  EXPECT_TRUE(r.output_schema);
  for (const char* body : {R"({})", R"({"input":[]})", R"({"input":"x","previous_response_id":"r"})",
                           R"({"input":[{"type":"image_generation_call"}]})",
                           R"({"input":"x","tools":[{"type":"web_search"}]})",
                           R"({"input":"x","max_output_tokens":0})"})
    EXPECT_EQ(status_of([&] { parse_responses_request(body); }), 400) << body;
}

TEST(ResponsesApi, StreamsEventsWithSequenceNumbersAndCompletes) {
  ResponsesFormat f("1", "m", 0);
  const std::string start = f.start(false);
  EXPECT_NE(start.find("event: response.created"), std::string::npos);
  EXPECT_NE(f.piece("hi").find(R"("delta":"hi")"), std::string::npos);
  engine::GenerationStats stats;
  stats.generated_tokens = 1;
  const std::string end = f.end(Answer{"hi", {}, "stop"}, stats, false);
  EXPECT_NE(end.find("event: response.output_text.done"), std::string::npos);
  EXPECT_NE(end.find("event: response.completed"), std::string::npos);
  EXPECT_NE(end.find(R"("sequence_number":)"), std::string::npos);
  const json cut = f.whole(Answer{"h", {}, "length"}, stats);
  EXPECT_EQ(cut["status"], "incomplete");
  EXPECT_EQ(cut["incomplete_details"]["reason"], "max_output_tokens");
}

}  // namespace
}  // namespace herd::api
