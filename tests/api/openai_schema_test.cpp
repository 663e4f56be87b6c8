#include "api/openai_schema.h"

#include <gtest/gtest.h>

#include "api/answer_format.h"
#include "api/metrics.h"

namespace herd::api {
namespace {

using nlohmann::json;

int status_of(std::string_view body, RequestKind kind) {
  try {
    parse_request(body, kind);
  } catch (const ApiError& e) {
    return e.status;
  }
  return 200;
}

TEST(ParseRequest, ReadsChatMessagesAndSamplingFields) {
  auto r = parse_request(R"({"model":"m","messages":[{"role":"system","content":"be brief"},
      {"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]}],
      "max_tokens":7,"temperature":0,"top_p":0.5,"top_k":3,"min_p":0.1,"seed":42,
      "stop":["a","b"],"presence_penalty":0.5,"frequency_penalty":-0.5,"repeat_penalty":1.1,
      "stream":true,"stream_options":{"include_usage":true}})",
                         RequestKind::kChat);
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1].role, "user");
  EXPECT_EQ(r.messages[1].content, "hi there");
  EXPECT_EQ(r.params.max_tokens, 7);
  EXPECT_EQ(r.params.sampling.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.params.sampling.top_p, 0.5f);
  EXPECT_EQ(r.params.sampling.top_k, 3);
  EXPECT_FLOAT_EQ(r.params.sampling.min_p, 0.1f);
  EXPECT_EQ(r.params.sampling.seed, 42u);
  EXPECT_EQ(r.params.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_FLOAT_EQ(r.params.sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r.params.sampling.frequency_penalty, -0.5f);
  EXPECT_FLOAT_EQ(r.params.sampling.repeat_penalty, 1.1f);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
}

TEST(ParseRequest, CompletionPromptAsStringOrIds) {
  auto text = parse_request(R"({"prompt":"Once","stop":"x"})", RequestKind::kCompletion);
  EXPECT_EQ(text.prompt, "Once");
  EXPECT_EQ(text.params.stop, std::vector<std::string>{"x"});
  EXPECT_EQ(text.params.max_tokens, -1);  // OpenAI: until the context is full
  auto ids = parse_request(R"({"prompt":[1,2,3]})", RequestKind::kCompletion);
  EXPECT_EQ(ids.prompt_ids, (std::vector<std::int32_t>{1, 2, 3}));
}

TEST(ParseRequest, RejectsMalformedRequestsWith400AndNamesTheField) {
  EXPECT_EQ(status_of("{not json", RequestKind::kChat), 400);
  EXPECT_EQ(status_of("[]", RequestKind::kChat), 400);
  EXPECT_EQ(status_of(R"({"model":"m"})", RequestKind::kChat), 400);
  EXPECT_EQ(status_of(R"({"messages":[]})", RequestKind::kChat), 400);
  EXPECT_EQ(status_of(R"({"messages":[{"role":"wizard","content":"x"}]})", RequestKind::kChat),
            400);
  EXPECT_EQ(status_of(R"({"messages":[{"role":"user","content":"x"}],"temperature":"hot"})",
                      RequestKind::kChat),
            400);
  EXPECT_EQ(status_of(R"({"messages":[{"role":"user","content":"x"}],"max_tokens":0})",
                      RequestKind::kChat),
            400);
  EXPECT_EQ(status_of(R"({"messages":[{"role":"user","content":"x"}],"n":2})", RequestKind::kChat),
            400);
  EXPECT_EQ(status_of(R"({"prompt":["a","b"]})", RequestKind::kCompletion), 400);
  EXPECT_EQ(status_of(R"({"prompt":[1,-2]})", RequestKind::kCompletion), 400);
  try {
    parse_request(R"({"messages":[{"role":"user","content":"x"}],"top_p":3})", RequestKind::kChat);
    FAIL() << "top_p 3 accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param, "top_p");
    EXPECT_NE(std::string(e.what()).find("between"), std::string::npos);
  }
}

TEST(Responses, FollowOpenAIShapes) {
  engine::GenerationResult result;
  result.text = "hello";
  result.stats.prompt_tokens = 3;
  result.stats.generated_tokens = 2;
  result.stats.finish_reason = "length";
  ResponseIds ids{"chatcmpl-1", 100, "m"};
  json chat = completion_response(RequestKind::kChat, ids, result);
  EXPECT_EQ(chat["object"], "chat.completion");
  EXPECT_EQ(chat["choices"][0]["message"]["content"], "hello");
  EXPECT_EQ(chat["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(chat["usage"]["total_tokens"], 5);
  json text = completion_response(RequestKind::kCompletion, ids, result);
  EXPECT_EQ(text["choices"][0]["text"], "hello");

  json first = stream_chunk(RequestKind::kChat, ids, "", "", true);
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  json piece = stream_chunk(RequestKind::kChat, ids, "he", "");
  EXPECT_EQ(piece["choices"][0]["delta"]["content"], "he");
  EXPECT_TRUE(piece["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(sse_event(json{{"a", 1}}), "data: {\"a\":1}\n\n");

  json err = error_body("bad", "invalid_request_error", "messages");
  EXPECT_EQ(err["error"]["param"], "messages");
  EXPECT_TRUE(err["error"]["code"].is_null());
}

TEST(Metrics, RendersCountersAndHistogram) {
  Metrics m;
  m.record_request("/v1/completions", 200);
  m.record_request("/v1/completions", 400);
  engine::GenerationStats s;
  s.prompt_tokens = 4;
  s.generated_tokens = 10;
  s.time_to_first_token_ms = 30;
  s.decode_tokens_per_s = 55;
  m.record_generation(s);
  std::string text = m.render({{"b", 2, 5, 0.01}});
  EXPECT_NE(text.find("herd_requests_total{endpoint=\"/v1/completions\",status=\"400\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("herd_time_to_first_token_seconds_bucket{le=\"0.05\"} 1"), std::string::npos);
  EXPECT_NE(text.find("herd_time_to_first_token_seconds_bucket{le=\"0.025\"} 0"),
            std::string::npos);
  EXPECT_NE(text.find("herd_generated_tokens_total 10"), std::string::npos);
  EXPECT_NE(text.find("herd_stage_seconds_per_token{node=\"b\",layers=\"2-4\"} 0.01"),
            std::string::npos);
  EXPECT_DOUBLE_EQ(m.last_decode_tokens_per_s(), 55);
}

}  // namespace
}  // namespace herd::api

namespace herd::api {
namespace {

TEST(ParseRequest, ToolsToolChoiceAndResponseFormatBecomeTheAnswersSchema) {
  const std::string tools =
      R"("tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object",
         "properties":{"b":{"type":"integer"},"a":{"type":"string"}},"required":["b","a"]}}}])";
  auto r = parse_request(R"({"messages":[{"role":"user","content":"x"}],)" + tools +
                             R"(,"tool_choice":{"type":"function","function":{"name":"f"}}})",
                         RequestKind::kChat);
  EXPECT_TRUE(r.forced_call());
  ASSERT_TRUE(r.output_schema);
  // The call's schema keeps the client's property order: b before a.
  const auto& args = r.output_schema->node(r.output_schema->node(r.output_schema->root).properties[1].node);
  ASSERT_EQ(args.properties.size(), 2u);
  EXPECT_EQ(args.properties[0].key_json, "\"b\"");

  r = parse_request(R"({"messages":[{"role":"user","content":"x"}],)" + tools + "}", RequestKind::kChat);
  EXPECT_FALSE(r.forced_call());
  EXPECT_TRUE(r.reads_calls());
  EXPECT_FALSE(r.output_schema);

  r = parse_request(R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}})",
                    RequestKind::kChat);
  ASSERT_TRUE(r.output_schema);
  EXPECT_TRUE(r.output_schema->node(r.output_schema->root).free_properties);

  // A conversation with a call and its result keeps them for the template.
  r = parse_request(R"({"messages":[{"role":"user","content":"x"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
        "function":{"name":"f","arguments":"{\"a\":\"q\",\"b\":1}"}}]},
      {"role":"tool","tool_call_id":"c1","content":"done"}]})",
                    RequestKind::kChat);
  EXPECT_EQ(r.messages_json[1]["tool_calls"][0]["function"]["arguments"]["b"], 1);
  EXPECT_EQ(r.messages_json[2]["tool_call_id"], "c1");
}

TEST(ParseRequest, MalformedToolsAndFormatsAre400NamingTheField) {
  auto param_of = [](const std::string& body) {
    try {
      parse_request(body, RequestKind::kChat);
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
      return e.param;
    }
    return std::string("accepted");
  };
  const std::string m = R"({"messages":[{"role":"user","content":"x"}],)";
  EXPECT_EQ(param_of(m + R"("tools":{}})"), "tools");
  EXPECT_EQ(param_of(m + R"("tools":[{"type":"function","function":{"name":""}}]})"),
            "tools[0].function.name");
  EXPECT_EQ(param_of(m + R"("tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","patternProperties":{}}}}]})"),
            "tools[0].function.parameters");
  EXPECT_EQ(param_of(m + R"("tool_choice":"required"})"), "tool_choice");
  EXPECT_EQ(param_of(m + R"("tool_choice":"sometimes"})"), "tool_choice");
  EXPECT_EQ(param_of(m + R"("response_format":{"type":"json_schema"}})"),
            "response_format.json_schema");
  EXPECT_EQ(param_of(R"({"messages":[{"role":"assistant","content":"x","tool_calls":{}}]})"),
            "messages[0].tool_calls");
}

TEST(Responses, ToolCallsComeBackAsOpenAIShapesThem) {
  auto r = parse_request(
      R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]})",
      RequestKind::kChat);
  engine::GenerationResult result;
  result.text = "ok <tool_call>{\"name\":\"f\",\"arguments\":{\"k\":2}}</tool_call>";
  result.stats.finish_reason = "stop";
  const Answer answer = read_answer(r, result);
  const auto body = completion_response(RequestKind::kChat, {"chatcmpl-1", 0, "m"}, result, &answer);
  const auto& choice = body["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_EQ(choice["message"]["content"], "ok");
  EXPECT_EQ(choice["message"]["tool_calls"][0]["function"]["name"], "f");
  EXPECT_EQ(choice["message"]["tool_calls"][0]["function"]["arguments"], "{\"k\":2}");
  EXPECT_EQ(choice["message"]["tool_calls"][0]["type"], "function");
}

}  // namespace
}  // namespace herd::api
