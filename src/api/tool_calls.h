// Tools (function calling) in chat completions: how the model is told about them when its own
// template is not run, what of its answer is a call, and the schema that forces a call.
//
// Formats: a model whose Jinja template is run gets the tools and the calls in the messages as
// the template writes them (Qwen's <tool_call>, Llama 3.1's JSON, Mistral's [TOOL_CALLS] ...).
// Built-in formats (no template) are told in the Hermes format Qwen's templates use: the tools
// in <tools></tools> in the system turn, calls as <tool_call>{...}</tool_call>, results as
// <tool_response> in a user turn. Answers are read in any of those formats.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/chat_template.h"

namespace herd::api {

struct ToolCall {
  std::string name;
  nlohmann::ordered_json arguments;  // an object
};

// A finished generation as every API reports it: the text, the tool calls read from it (when
// the request offered tools), and why it ended: "stop", "length" or "tool_calls".
struct Answer {
  std::string text;  // without the calls
  std::vector<ToolCall> calls;
  std::string finish;
};

// The Hermes system-prompt section that describes `tools` (OpenAI function tools).
std::string hermes_tools_prompt(const nlohmann::ordered_json& tools);

// OpenAI messages (with assistant tool_calls and tool results) as plain turns in the Hermes
// format, the tools described in the system turn (one is added when there is none).
std::vector<model::ChatMessage> hermes_messages(const nlohmann::ordered_json& messages,
                                                const nlohmann::ordered_json& tools);

// The calls in an answer: Hermes <tool_call>{"name", "arguments"}</tool_call> blocks, Mistral's
// [TOOL_CALLS] followed by a JSON array, DeepSeek's <｜tool▁call▁begin｜> blocks, or an answer
// that is one {"name", "arguments" or "parameters"} object (Llama 3.1, with or without
// <|python_tag|>). `content` gets the text
// outside the calls, trimmed. Calls of tools not in `tools` are left as text.
std::vector<ToolCall> parse_tool_calls(std::string_view text, const nlohmann::ordered_json& tools,
                                       std::string& content);

// The JSON schema of one forced call, {"name": ..., "arguments": {...}}: of the tool `only`, or
// of any of `tools` when `only` is empty.
nlohmann::ordered_json forced_call_schema(const nlohmann::ordered_json& tools,
                                          const std::string& only);

// The answer to a forced call, as written under forced_call_schema; nullopt when it is not
// whole (the generation hit max_tokens).
std::optional<ToolCall> read_forced_call(std::string_view text);

}  // namespace herd::api
