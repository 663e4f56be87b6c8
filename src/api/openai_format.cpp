#include "api/openai_format.h"

namespace herd::api {

using nlohmann::json;

std::string OpenAIFormat::start(bool) {
  return kind_ == RequestKind::kChat ? sse_event(stream_chunk(kind_, ids_, "", "", true)) : "";
}

std::string OpenAIFormat::piece(std::string_view text) {
  return sse_event(stream_chunk(kind_, ids_, text, ""));
}

std::string OpenAIFormat::end(const Answer& answer, const engine::GenerationStats& stats,
                              bool held) {
  std::string out;
  if (held) {
    // The one delta of an answer held back for its tool calls: its text and/or its calls, each
    // with its index (as OpenAI streams them).
    const json message = openai_message(answer, "call_" + ids_.id);
    json chunk = stream_chunk(kind_, ids_, "", "");
    json delta = json::object();
    if (message["content"].is_string()) delta["content"] = message["content"];
    if (message.contains("tool_calls")) {
      delta["tool_calls"] = message["tool_calls"];
      for (std::size_t i = 0; i < delta["tool_calls"].size(); ++i)
        delta["tool_calls"][i]["index"] = i;
    }
    chunk["choices"][0]["delta"] = delta;
    out += sse_event(chunk);
  }
  out += sse_event(stream_chunk(kind_, ids_, "", answer.finish));
  if (include_usage_) {
    json usage = stream_chunk(kind_, ids_, "", "");
    usage["choices"] = json::array();
    usage["usage"] = usage_json(stats);
    out += sse_event(usage);
  }
  out += kSseDone;
  return out;
}

std::string OpenAIFormat::stream_error(std::string_view message) {
  return sse_event(error_body(message, "server_error")) + std::string(kSseDone);
}

json OpenAIFormat::whole(const Answer& answer, const engine::GenerationStats& stats) {
  engine::GenerationResult result;
  result.text = answer.text;
  result.stats = stats;
  return completion_response(kind_, ids_, result, &answer);
}

}  // namespace herd::api
