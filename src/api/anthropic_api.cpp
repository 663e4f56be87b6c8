#include "api/anthropic_api.h"

#include <fmt/format.h>

namespace herd::api {

using nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

// A string, or text blocks joined; other blocks are refused by name.
std::string text_of(const ojson& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) bad_request(where + " must be a string or an array of content blocks");
  std::string text;
  for (const auto& b : content) {
    if (!b.is_object() || b.value("type", "") != "text" || !b.contains("text") || !b["text"].is_string())
      bad_request(where + ": only text blocks are supported here (this server has no image or document input)");
    text += b["text"].get<std::string>();
  }
  return text;
}

const char* stop_reason(const std::string& finish) {
  if (finish == "tool_calls") return "tool_use";
  if (finish == "length") return "max_tokens";
  return "end_turn";
}

}  // namespace

CompletionRequest parse_anthropic_messages(std::string_view body) {
  check_json_depth(body);
  const ojson in = ojson::parse(body, nullptr, false);
  if (in.is_discarded() || !in.is_object()) bad_request("the request body must be a JSON object");
  if (!in.contains("max_tokens") || !in["max_tokens"].is_number_integer() ||
      in["max_tokens"].get<std::int64_t>() < 1)
    bad_request("max_tokens: a positive integer is required");
  if (!in.contains("messages") || !in["messages"].is_array() || in["messages"].empty())
    bad_request("messages: a non-empty array of {\"role\", \"content\"} is required");
  ojson out = {{"max_tokens", in["max_tokens"]}, {"stream", in.value("stream", false)}};
  if (in.contains("model")) out["model"] = in["model"];
  for (const char* key : {"temperature", "top_p", "top_k"})
    if (in.contains(key)) out[key] = in[key];
  if (in.contains("temperature") && in["temperature"].is_number() && in["temperature"].get<double>() > 1)
    bad_request("temperature: must be between 0 and 1");
  if (in.contains("stop_sequences")) out["stop"] = in["stop_sequences"];

  ojson messages = ojson::array();
  if (in.contains("system") && !in["system"].is_null())
    messages.push_back({{"role", "system"}, {"content", text_of(in["system"], "system")}});
  for (std::size_t i = 0; i < in["messages"].size(); ++i) {
    const ojson& m = in["messages"][i];
    const std::string where = fmt::format("messages.{}", i);
    if (!m.is_object() || !m.contains("content")) bad_request(where + ": {\"role\", \"content\"} is required");
    const std::string role = m.value("role", "");
    if (role != "user" && role != "assistant") bad_request(where + ".role: must be \"user\" or \"assistant\"");
    const ojson& content = m["content"];
    if (content.is_string()) {
      messages.push_back({{"role", role}, {"content", content}});
      continue;
    }
    if (!content.is_array()) bad_request(where + ".content: must be a string or an array of content blocks");
    std::string text;
    ojson calls = ojson::array();
    for (std::size_t k = 0; k < content.size(); ++k) {
      const ojson& b = content[k];
      const std::string at = fmt::format("{}.content.{}", where, k);
      const std::string type = b.is_object() ? b.value("type", "") : "";
      if (type == "text" && b.contains("text") && b["text"].is_string()) {
        text += b["text"].get<std::string>();
      } else if (type == "tool_use" && role == "assistant") {
        if (!b.contains("name") || !b["name"].is_string() || !b.contains("input") || !b["input"].is_object())
          bad_request(at + ": a tool_use block needs \"id\", \"name\" and an \"input\" object");
        calls.push_back({{"id", b.value("id", "")},
                         {"type", "function"},
                         {"function", {{"name", b["name"]}, {"arguments", b["input"]}}}});
      } else if (type == "tool_result" && role == "user") {
        if (!b.contains("tool_use_id") || !b["tool_use_id"].is_string())
          bad_request(at + ": a tool_result block needs \"tool_use_id\"");
        std::string result = b.contains("content") ? text_of(b["content"], at + ".content") : "";
        if (b.value("is_error", false)) result = "Error: " + result;
        messages.push_back({{"role", "tool"}, {"tool_call_id", b["tool_use_id"]}, {"content", result}});
      } else {
        bad_request(at + ": block type '" + type + "' is not supported in a " + role + " message");
      }
    }
    if (role == "assistant") {
      ojson msg = {{"role", "assistant"}, {"content", text}};
      if (!calls.empty()) msg["tool_calls"] = calls;
      messages.push_back(msg);
    } else if (!text.empty()) {
      messages.push_back({{"role", "user"}, {"content", text}});
    }
  }
  out["messages"] = messages;

  if (in.contains("tools") && !in["tools"].is_null()) {
    if (!in["tools"].is_array()) bad_request("tools: must be an array");
    ojson tools = ojson::array();
    for (std::size_t i = 0; i < in["tools"].size(); ++i) {
      const ojson& t = in["tools"][i];
      if (!t.is_object() || !t.contains("name") || !t.contains("input_schema") ||
          (t.contains("type") && t["type"] != "custom"))
        bad_request(fmt::format("tools.{}: a tool needs \"name\" and \"input_schema\" (server tools are not supported)", i));
      ojson f = {{"name", t["name"]}, {"parameters", t["input_schema"]}};
      if (t.contains("description")) f["description"] = t["description"];
      tools.push_back({{"type", "function"}, {"function", f}});
    }
    out["tools"] = tools;
  }
  if (in.contains("tool_choice") && !in["tool_choice"].is_null()) {
    const ojson& c = in["tool_choice"];
    const std::string type = c.is_object() ? c.value("type", "") : "";
    if (type == "auto") out["tool_choice"] = "auto";
    else if (type == "any") out["tool_choice"] = "required";
    else if (type == "none") out["tool_choice"] = "none";
    else if (type == "tool" && c.contains("name"))
      out["tool_choice"] = {{"type", "function"}, {"function", {{"name", c["name"]}}}};
    else bad_request("tool_choice: must be {\"type\": \"auto\" | \"any\" | \"none\"} or {\"type\": \"tool\", \"name\"}");
  }
  return request_from_json(out, RequestKind::kChat);
}

json AnthropicFormat::message(const Answer* answer, const engine::GenerationStats* stats) const {
  json content = json::array();
  if (answer) {
    if (!answer->text.empty() || answer->calls.empty())
      content.push_back({{"type", "text"}, {"text", answer->text}});
    for (std::size_t i = 0; i < answer->calls.size(); ++i)
      content.push_back({{"type", "tool_use"},
                         {"id", fmt::format("toolu_{}_{}", id_, i)},
                         {"name", answer->calls[i].name},
                         {"input", json(answer->calls[i].arguments)}});
  }
  return {{"id", id_},
          {"type", "message"},
          {"role", "assistant"},
          {"model", model_},
          {"content", content},
          {"stop_reason", answer ? json(stop_reason(answer->finish)) : json(nullptr)},
          {"stop_sequence", nullptr},
          {"usage",
           {{"input_tokens", stats ? stats->prompt_tokens : prompt_tokens_},
            {"output_tokens", stats ? stats->generated_tokens : 0}}}};
}

std::string AnthropicFormat::start(bool held) {
  std::string out = named_event("message_start", {{"type", "message_start"}, {"message", message(nullptr, nullptr)}});
  if (!held) {
    out += named_event("content_block_start", {{"type", "content_block_start"},
                                               {"index", 0},
                                               {"content_block", {{"type", "text"}, {"text", ""}}}});
  }
  out += named_event("ping", {{"type", "ping"}});
  return out;
}

std::string AnthropicFormat::piece(std::string_view text) {
  return named_event("content_block_delta", {{"type", "content_block_delta"},
                                             {"index", 0},
                                             {"delta", {{"type", "text_delta"}, {"text", text}}}});
}

std::string AnthropicFormat::end(const Answer& answer, const engine::GenerationStats& stats,
                                 bool held) {
  std::string out;
  auto stop = [&](int index) {
    out += named_event("content_block_stop", {{"type", "content_block_stop"}, {"index", index}});
  };
  if (!held) {
    stop(0);
  } else {
    // Written now, block by block: the text (if any), then each tool_use with its input.
    const json m = message(&answer, &stats);
    int index = 0;
    for (const auto& block : m["content"]) {
      json opening = block;
      json delta;
      if (block["type"] == "text") {
        opening["text"] = "";
        delta = {{"type", "text_delta"}, {"text", block["text"]}};
      } else {
        opening["input"] = json::object();
        delta = {{"type", "input_json_delta"}, {"partial_json", block["input"].dump()}};
      }
      out += named_event("content_block_start", {{"type", "content_block_start"}, {"index", index}, {"content_block", opening}});
      out += named_event("content_block_delta", {{"type", "content_block_delta"}, {"index", index}, {"delta", delta}});
      stop(index++);
    }
  }
  out += named_event("message_delta",
                     {{"type", "message_delta"},
                      {"delta", {{"stop_reason", stop_reason(answer.finish)}, {"stop_sequence", nullptr}}},
                      {"usage", {{"output_tokens", stats.generated_tokens}}}});
  out += named_event("message_stop", {{"type", "message_stop"}});
  return out;
}

std::string AnthropicFormat::stream_error(std::string_view message) {
  return named_event("error", {{"type", "error"}, {"error", {{"type", "api_error"}, {"message", message}}}});
}

json AnthropicFormat::whole(const Answer& answer, const engine::GenerationStats& stats) {
  return message(&answer, &stats);
}

}  // namespace herd::api
