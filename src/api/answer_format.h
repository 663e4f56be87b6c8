// The seam between the one way herd runs a generation and the several APIs that ask for one
// (OpenAI chat/completions and Responses, Ollama, Anthropic Messages): each API parses its
// request into a CompletionRequest and gives an AnswerFormat that writes the answer in its
// shapes; the server (server.cpp) queues, waits, streams and cancels the same way for all.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "api/openai_schema.h"
#include "api/tool_calls.h"
#include "engine/generator.h"

namespace herd::api {

// The Answer (tool_calls.h) of a finished generation of `request`.
Answer read_answer(const CompletionRequest& request, const engine::GenerationResult& result);

class AnswerFormat {
 public:
  virtual ~AnswerFormat() = default;

  // Streamed answers.
  virtual const char* stream_content_type() const { return "text/event-stream"; }
  // The request's prompt, in tokens, once known (before start()).
  virtual void set_prompt_tokens(int) {}
  // `held`: the text will not come piece by piece (see end()).
  virtual std::string start(bool /*held*/) { return ""; }
  virtual std::string piece(std::string_view text) = 0;
  // `held`: no piece was sent (tool calls are read from the whole answer), so the end writes
  // the answer's text too.
  virtual std::string end(const Answer& answer, const engine::GenerationStats& stats,
                          bool held) = 0;
  virtual std::string stream_error(std::string_view message) = 0;

  // Answers that are not streamed: the whole body.
  virtual nlohmann::json whole(const Answer& answer, const engine::GenerationStats& stats) = 0;
};

// Each API's error body.
enum class ErrorStyle { kOpenAI, kOllama, kAnthropic };
nlohmann::json error_json(ErrorStyle style, int status, std::string_view message,
                          std::string_view type = "invalid_request_error",
                          std::string_view param = "", std::string_view code = "");
// The style of the API a path belongs to.
ErrorStyle error_style_of(std::string_view path);

// How deeply a request's JSON may nest. Deeper bodies are refused before they are parsed:
// copying and comparing JSON values recurses, so a body nested 10^5 deep would overflow a
// thread's stack. Every API's parser calls check_json_depth first.
inline constexpr int kMaxJsonDepth = 128;
// The deepest nesting of arrays and objects in `body` (strings and escapes skipped); counting
// stops past `limit`.
int json_nesting_depth(std::string_view body, int limit);
// ApiError(400) when `body` nests deeper than kMaxJsonDepth.
void check_json_depth(std::string_view body);

// Server-sent event with a name (Anthropic and Responses name theirs).
std::string named_event(std::string_view name, const nlohmann::json& data);

}  // namespace herd::api
