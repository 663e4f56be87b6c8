// The OpenAI-compatible request and response bodies, as pure functions: JSON in, a validated
// request out; results in, JSON out. No sockets here, so every rule is tested directly.
// Field reference: https://platform.openai.com/docs/api-reference/chat and .../completions.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "engine/generator.h"
#include "api/tool_calls.h"
#include "grammar/json_schema.h"
#include "model/chat_template.h"

namespace herd::api {

// A request the client got wrong (or a refusal): carried to the HTTP boundary, which answers
// with `status` and OpenAI's error object.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string type = "invalid_request_error",
           std::string param = "", std::string code = "")
      : std::runtime_error(std::move(message)),
        status(status),
        type(std::move(type)),
        param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type;
  std::string param;
  std::string code;
  int retry_after_s = 0;  // > 0: sent as a Retry-After header (429, 503)
};

// ApiError 400 (invalid_request_error) naming `param` when given: a request the client got wrong.
[[noreturn]] inline void bad_request(const std::string& message, const std::string& param = "") {
  throw ApiError(400, message, "invalid_request_error", param);
}

enum class RequestKind { kChat, kCompletion };

// tool_choice: auto (the model decides), none (no calls), required (one call of any tool), or a
// named function (a call of it).
enum class ToolChoice { kAuto, kNone, kRequired, kNamed };

struct CompletionRequest {
  RequestKind kind = RequestKind::kChat;
  std::string model;                         // as sent; empty when absent
  std::vector<model::ChatMessage> messages;  // kChat
  std::string prompt;                        // kCompletion with a text prompt
  std::vector<std::int32_t> prompt_ids;      // kCompletion with a token-id prompt
  engine::GenerationParams params;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with usage

  // kChat: the messages as sent (assistant tool_calls and tool results included), for templates.
  nlohmann::ordered_json messages_json;
  nlohmann::ordered_json tools = nlohmann::ordered_json::array();  // OpenAI function tools
  ToolChoice tool_choice = ToolChoice::kAuto;
  std::string tool_name;  // kNamed
  // The JSON schema the answer must match (response_format json_schema or json_object, or a
  // forced tool call's {"name", "arguments"}); null: free text. Enforced by constrained sampling.
  std::shared_ptr<const grammar::Schema> output_schema;
  // A tool call is forced (required / named): the answer is the call.
  bool forced_call() const {
    return !tools.empty() && (tool_choice == ToolChoice::kRequired || tool_choice == ToolChoice::kNamed);
  }
  // The answer may hold calls to read back (tools given and not switched off).
  bool reads_calls() const { return !tools.empty() && tool_choice != ToolChoice::kNone; }
};

// Parse and validate a body of POST /v1/chat/completions or /v1/completions. Throws ApiError(400)
// naming the field for malformed JSON, missing messages/prompt, wrong types or out-of-range values.
CompletionRequest parse_request(std::string_view body, RequestKind kind);
// The same from a parsed body (the other APIs' adapters build one in this shape).
CompletionRequest request_from_json(const nlohmann::ordered_json& body, RequestKind kind);

// {"error": {"message", "type", "param", "code"}} as OpenAI sends it (null param/code when empty).
nlohmann::json error_body(std::string_view message, std::string_view type = "invalid_request_error",
                          std::string_view param = "", std::string_view code = "");

struct ResponseIds {
  std::string id;            // "chatcmpl-..." / "cmpl-..."
  std::int64_t created = 0;  // Unix seconds
  std::string model;
};

// "stop" / "length"; a cancelled generation reports "stop" (the client is gone anyway).
std::string finish_reason(const engine::GenerationStats& stats);
nlohmann::json usage_json(const engine::GenerationStats& stats);

// Non-streaming bodies. With `answer` (read_answer), a chat answer's tool calls come back as
// message.tool_calls with finish_reason "tool_calls".
nlohmann::json completion_response(RequestKind kind, const ResponseIds& ids,
                                   const engine::GenerationResult& result,
                                   const Answer* answer = nullptr);
// A chat answer as OpenAI's message: {"role", "content"} and, with calls, "tool_calls" (ids
// `call_id_prefix`_0, _1 ...; content null when there is no text).
nlohmann::json openai_message(const Answer& answer, const std::string& call_id_prefix);
// One streamed chunk: text (delta) and/or a finish reason; `role_chunk` = the first chat chunk,
// carrying {"role":"assistant"}.
nlohmann::json stream_chunk(RequestKind kind, const ResponseIds& ids, std::string_view text,
                            const std::string& finish, bool role_chunk = false);
// Server-sent event framing: "data: <json>\n\n".
std::string sse_event(const nlohmann::json& body);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

}  // namespace herd::api
