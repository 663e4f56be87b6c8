#include "api/tool_calls.h"

#include <gtest/gtest.h>

namespace herd::api {
namespace {

using ojson = nlohmann::ordered_json;

const ojson kTools = ojson::parse(R"([
  {"type": "function", "function": {"name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
  {"type": "function", "function": {"name": "get_time"}}])");

TEST(ToolCalls, ReadsHermesBlocksAndKeepsTheTextAround) {
  std::string content;
  const auto calls = parse_tool_calls(
      "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
      "\"Oslo\"}}\n</tool_call>\n<tool_call>{\"name\":\"get_time\",\"arguments\":\"{}\"}",
      kTools, content);
  ASSERT_EQ(calls.size(), 2u);  // the second unclosed: the answer ended
  EXPECT_EQ(calls[0].name, "get_weather");
  EXPECT_EQ(calls[0].arguments["city"], "Oslo");
  EXPECT_EQ(calls[1].name, "get_time");
  EXPECT_TRUE(calls[1].arguments.is_object());  // arguments given as a JSON string
  EXPECT_EQ(content, "Let me look.");
}

TEST(ToolCalls, ReadsMistralAndLlamaFormats) {
  std::string content;
  auto calls = parse_tool_calls(
      R"([TOOL_CALLS] [{"name": "get_time", "arguments": {}}, {"name": "get_weather", "arguments": {"city": "Rome"}}])",
      kTools, content);
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[1].arguments["city"], "Rome");
  calls = parse_tool_calls(R"(<|python_tag|>{"name": "get_weather", "parameters": {"city": "Lima"}})",
                           kTools, content);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].arguments["city"], "Lima");
  EXPECT_EQ(content, "");
}

TEST(ToolCalls, ReadsDeepSeekFormat) {
  std::string content;
  const auto calls = parse_tool_calls(
      "Checking.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
      "```json\n{\"city\": \"Kyiv\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
      kTools, content);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].name, "get_weather");
  EXPECT_EQ(calls[0].arguments["city"], "Kyiv");
  EXPECT_EQ(content, "Checking.");
}

TEST(ToolCalls, TextThatIsNoCallOfAKnownToolStaysText) {
  std::string content;
  EXPECT_TRUE(parse_tool_calls("It is sunny.", kTools, content).empty());
  EXPECT_EQ(content, "It is sunny.");
  const std::string unknown = R"(<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>)";
  EXPECT_TRUE(parse_tool_calls(unknown, kTools, content).empty());
  EXPECT_EQ(content, unknown);
  EXPECT_TRUE(parse_tool_calls("<tool_call>{not json</tool_call>", kTools, content).empty());
}

TEST(ToolCalls, HermesMessagesDescribeToolsAndCarryCallsAndResults) {
  const ojson messages = ojson::parse(R"([
    {"role": "user", "content": "Weather?"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
      "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "3 C"},
    {"role": "tool", "tool_call_id": "c2", "content": "noon"}])");
  const auto turns = hermes_messages(messages, kTools);
  ASSERT_EQ(turns.size(), 4u);
  EXPECT_EQ(turns[0].role, "system");
  EXPECT_NE(turns[0].content.find("<tools>"), std::string::npos);
  EXPECT_NE(turns[0].content.find("get_time"), std::string::npos);
  EXPECT_EQ(turns[2].role, "assistant");
  EXPECT_NE(turns[2].content.find(R"(<tool_call>
{"name":"get_weather","arguments":{"city":"Oslo"}}
</tool_call>)"), std::string::npos);
  EXPECT_EQ(turns[3].role, "user");  // both results in one turn
  EXPECT_EQ(turns[3].content,
            "<tool_response>\n3 C\n</tool_response>\n<tool_response>\nnoon\n</tool_response>");
}

TEST(ToolCalls, ForcedCallSchemaNamesTheToolAndTakesItsParameters) {
  const ojson one = forced_call_schema(kTools, "get_weather");
  EXPECT_EQ(one["properties"]["name"]["const"], "get_weather");
  EXPECT_EQ(one["properties"]["arguments"]["properties"]["city"]["type"], "string");
  const ojson any = forced_call_schema(kTools, "");
  ASSERT_TRUE(any.contains("anyOf"));
  EXPECT_EQ(any["anyOf"].size(), 2u);
  EXPECT_EQ(any["anyOf"][1]["properties"]["arguments"]["type"], "object");  // no parameters
  const auto call = read_forced_call(R"({"name":"get_time","arguments":{}})");
  ASSERT_TRUE(call);
  EXPECT_EQ(call->name, "get_time");
  EXPECT_FALSE(read_forced_call(R"({"name":"get_time","argum)"));
}

}  // namespace
}  // namespace herd::api
