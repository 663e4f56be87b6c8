#include "api/answer_format.h"

#include <fmt/format.h>

#include <algorithm>

namespace herd::api {

using nlohmann::json;

Answer read_answer(const CompletionRequest& request, const engine::GenerationResult& result) {
  Answer a;
  a.text = result.text;
  a.finish = finish_reason(result.stats);
  if (request.forced_call()) {
    if (auto call = read_forced_call(result.text)) {
      a.calls.push_back(*call);
      a.text.clear();
    }
  } else if (request.reads_calls()) {
    a.calls = parse_tool_calls(result.text, request.tools, a.text);
  }
  if (!a.calls.empty()) a.finish = "tool_calls";
  return a;
}

namespace {

const char* anthropic_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

}  // namespace

json error_json(ErrorStyle style, int status, std::string_view message, std::string_view type,
                std::string_view param, std::string_view code) {
  switch (style) {
    case ErrorStyle::kOllama:
      return {{"error", message}};
    case ErrorStyle::kAnthropic:
      return {{"type", "error"}, {"error", {{"type", anthropic_type(status)}, {"message", message}}}};
    case ErrorStyle::kOpenAI:
      break;
  }
  return error_body(message, type, param, code);
}

ErrorStyle error_style_of(std::string_view path) {
  if (path.rfind("/api/", 0) == 0) return ErrorStyle::kOllama;
  if (path.rfind("/v1/messages", 0) == 0) return ErrorStyle::kAnthropic;
  return ErrorStyle::kOpenAI;
}

int json_nesting_depth(std::string_view body, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

void check_json_depth(std::string_view body) {
  if (json_nesting_depth(body, kMaxJsonDepth) > kMaxJsonDepth)
    throw ApiError(400, fmt::format("the request's JSON nests deeper than {} levels", kMaxJsonDepth),
                   "invalid_request_error");
}

std::string named_event(std::string_view name, const json& data) {
  std::string out = "event: ";
  out += name;
  out += "\ndata: ";
  out += data.dump(-1, ' ', false, json::error_handler_t::replace);
  out += "\n\n";
  return out;
}

}  // namespace herd::api
