#include "api/ollama_api.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

namespace herd::api {

using nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

ojson body_of(std::string_view body) {
  check_json_depth(body);
  ojson j = ojson::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) bad_request("the request body must be a JSON object");
  return j;
}

// Ollama's options and format onto an OpenAI body.
void map_options(const ojson& in, ojson& out) {
  if (in.contains("model")) out["model"] = in["model"];
  out["stream"] = in.value("stream", true);  // Ollama streams unless told not to
  if (in.contains("options") && !in["options"].is_null()) {
    const ojson& o = in["options"];
    if (!o.is_object()) bad_request("'options' must be an object");
    for (const char* key : {"temperature", "top_p", "top_k", "min_p", "seed", "stop",
                            "repeat_penalty", "repeat_last_n", "presence_penalty",
                            "frequency_penalty"})
      if (o.contains(key)) out[key] = o[key];
    // num_predict: -1 (or -2, "fill the context") means no limit.
    if (o.contains("num_predict") && o["num_predict"].is_number_integer() &&
        o["num_predict"].get<std::int64_t>() > 0)
      out["max_tokens"] = o["num_predict"];
    else if (o.contains("num_predict") && !o["num_predict"].is_number_integer())
      bad_request("'options.num_predict' must be an integer");
  }
  if (in.contains("format") && !in["format"].is_null()) {
    const ojson& f = in["format"];
    if (f.is_string() && f.get<std::string>() == "json")
      out["response_format"] = {{"type", "json_object"}};
    else if (f.is_object())
      out["response_format"] = {{"type", "json_schema"},
                                {"json_schema", {{"name", "format"}, {"schema", f}}}};
    else if (!(f.is_string() && f.get<std::string>().empty()))
      bad_request("'format' must be \"json\" or a JSON schema object");
  }
}

CompletionRequest parse_as_openai(const ojson& body, RequestKind kind) {
  try {
    return request_from_json(body, kind);
  } catch (ApiError& e) {
    // The OpenAI field names mean little to an Ollama client: say it in Ollama's terms.
    std::string message = e.what();
    for (auto [from, to] : {std::pair{"max_tokens", "options.num_predict"},
                            std::pair{"response_format", "format"}})
      for (std::size_t at; (at = message.find(from)) != std::string::npos;)
        message.replace(at, std::string_view(from).size(), to);
    throw ApiError(e.status, message, e.type, e.param, e.code);
  }
}

std::string now_rfc3339() {
  const auto now = std::chrono::system_clock::now();
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count() %
                  1'000'000'000;
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:09d}Z",
                     std::chrono::time_point_cast<std::chrono::seconds>(now), ns);
}

json ollama_details(const json& details) {
  const std::string arch = details.value("architecture", "");
  return {{"parent_model", ""},
          {"format", "gguf"},
          {"family", arch},
          {"families", arch.empty() ? json::array() : json::array({arch})},
          {"parameter_size", ""},
          {"quantization_level", ""}};
}

json tool_calls_json(const Answer& answer) {
  json calls = json::array();
  for (const auto& c : answer.calls)
    calls.push_back({{"function", {{"name", c.name}, {"arguments", json(c.arguments)}}}});
  return calls;
}

}  // namespace

CompletionRequest parse_ollama_chat(std::string_view text) {
  const ojson in = body_of(text);
  ojson out = ojson::object();
  if (!in.contains("messages") || !in["messages"].is_array())
    bad_request("'messages' is required: an array of {\"role\", \"content\"} objects");
  ojson messages = ojson::array();
  for (const auto& m : in["messages"]) {
    if (!m.is_object()) bad_request("every message must be an object with role and content");
    ojson msg = {{"role", m.value("role", "")}, {"content", m.value("content", "")}};
    if (m.contains("images") && !m["images"].empty())
      bad_request("this server has no image input (a message has 'images')");
    if (m.contains("tool_calls") && m["tool_calls"].is_array()) {
      ojson calls = ojson::array();
      for (const auto& c : m["tool_calls"])
        calls.push_back({{"id", ""}, {"type", "function"}, {"function", c.value("function", ojson::object())}});
      msg["tool_calls"] = calls;
    }
    messages.push_back(msg);
  }
  out["messages"] = messages;
  if (in.contains("tools") && !in["tools"].is_null()) out["tools"] = in["tools"];
  map_options(in, out);
  return parse_as_openai(out, RequestKind::kChat);
}

bool ollama_is_load_only(std::string_view text) {
  if (json_nesting_depth(text, kMaxJsonDepth) > kMaxJsonDepth) return false;  // refused later
  const ojson in = ojson::parse(text, nullptr, false);
  return in.is_object() && (!in.contains("prompt") ||
                            (in["prompt"].is_string() && in["prompt"].get<std::string>().empty()));
}

CompletionRequest parse_ollama_generate(std::string_view text) {
  const ojson in = body_of(text);
  if (!in.contains("prompt") || !in["prompt"].is_string()) bad_request("'prompt' must be a string");
  if (in.contains("images") && !in["images"].empty()) bad_request("this server has no image input");
  ojson out = ojson::object();
  map_options(in, out);
  if (in.value("raw", false)) {
    out["prompt"] = in["prompt"];  // as is: no template
    return parse_as_openai(out, RequestKind::kCompletion);
  }
  ojson messages = ojson::array();
  if (in.contains("system") && in["system"].is_string() && !in["system"].get<std::string>().empty())
    messages.push_back({{"role", "system"}, {"content", in["system"]}});
  messages.push_back({{"role", "user"}, {"content", in["prompt"]}});
  out["messages"] = messages;
  return parse_as_openai(out, RequestKind::kChat);
}

json ollama_tags(const std::string& model_id, const json& details) {
  const std::string name = model_id + ":latest";
  return {{"models",
           json::array({{{"name", name},
                         {"model", name},
                         {"modified_at", now_rfc3339()},
                         {"size", details.value("file_bytes", std::uint64_t{0})},
                         {"digest", ""},
                         {"details", ollama_details(details)}}})}};
}

json ollama_show(const std::string& model_id, const json& details, std::int32_t n_ctx) {
  const std::string arch = details.value("architecture", "");
  json info = {{"general.architecture", arch}, {"general.name", details.value("name", model_id)}};
  if (!arch.empty()) info[arch + ".context_length"] = n_ctx;
  return {{"modelfile", ""},
          {"parameters", ""},
          {"template", ""},
          {"details", ollama_details(details)},
          {"model_info", info},
          {"capabilities", json::array({"completion", "tools"})},
          {"modified_at", now_rfc3339()}};
}

OllamaFormat::OllamaFormat(bool chat, std::string model) : chat_(chat), model_(std::move(model)) {}

json OllamaFormat::line(std::string_view text) const {
  json j = {{"model", model_}, {"created_at", now_rfc3339()}};
  if (chat_)
    j["message"] = {{"role", "assistant"}, {"content", text}};
  else
    j["response"] = text;
  j["done"] = false;
  return j;
}

json OllamaFormat::last(const Answer& answer, const engine::GenerationStats& stats) const {
  json j = line("");
  j["done"] = true;
  j["done_reason"] = answer.finish == "length" ? "length" : "stop";
  const double total_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  const double decode_s = stats.decode_tokens_per_s > 0 && stats.generated_tokens > 1
                              ? (stats.generated_tokens - 1) / stats.decode_tokens_per_s
                              : 0.0;
  j["total_duration"] = static_cast<std::int64_t>(total_s * 1e9);
  j["load_duration"] = 0;
  j["prompt_eval_count"] = stats.prompt_tokens;
  j["prompt_eval_duration"] = static_cast<std::int64_t>(stats.time_to_first_token_ms * 1e6);
  j["eval_count"] = stats.generated_tokens;
  j["eval_duration"] = static_cast<std::int64_t>(decode_s * 1e9);
  if (!chat_) j["context"] = json::array();
  return j;
}

std::string OllamaFormat::piece(std::string_view text) {
  return line(text).dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string OllamaFormat::end(const Answer& answer, const engine::GenerationStats& stats,
                              bool held) {
  std::string out;
  if (held && (!answer.text.empty() || !answer.calls.empty())) {
    json j = line(answer.text);
    if (chat_ && !answer.calls.empty()) j["message"]["tool_calls"] = tool_calls_json(answer);
    out += j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }
  out += last(answer, stats).dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  return out;
}

std::string OllamaFormat::stream_error(std::string_view message) {
  return json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

json OllamaFormat::whole(const Answer& answer, const engine::GenerationStats& stats) {
  json j = last(answer, stats);
  if (chat_) {
    j["message"]["content"] = answer.text;
    if (!answer.calls.empty()) j["message"]["tool_calls"] = tool_calls_json(answer);
  } else {
    j["response"] = answer.text;
  }
  return j;
}

}  // namespace herd::api
