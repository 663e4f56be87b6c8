#include "api/responses_api.h"

#include <fmt/format.h>

namespace herd::api {

using nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

// A string, or parts of type input_text / output_text / text, joined.
std::string text_of(const ojson& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) bad_request(where + " must be a string or an array of text parts", where);
  std::string text;
  for (const auto& p : content) {
    const std::string type = p.is_object() ? p.value("type", "") : "";
    if ((type != "input_text" && type != "output_text" && type != "text") || !p.contains("text") ||
        !p["text"].is_string())
      bad_request(where + ": only text parts are supported (this server has no image or file input)", where);
    text += p["text"].get<std::string>();
  }
  return text;
}

}  // namespace

CompletionRequest parse_responses_request(std::string_view body) {
  check_json_depth(body);
  const ojson in = ojson::parse(body, nullptr, false);
  if (in.is_discarded() || !in.is_object()) bad_request("the request body must be a JSON object");
  if (in.contains("previous_response_id") && !in["previous_response_id"].is_null())
    bad_request("previous_response_id is not supported: this server keeps no responses; send the whole "
        "conversation as input", "previous_response_id");
  ojson out = {{"stream", in.value("stream", false)}};
  if (in.contains("model")) out["model"] = in["model"];
  for (const char* key : {"temperature", "top_p"})
    if (in.contains(key)) out[key] = in[key];
  if (in.contains("max_output_tokens") && !in["max_output_tokens"].is_null())
    out["max_tokens"] = in["max_output_tokens"];

  ojson messages = ojson::array();
  if (in.contains("instructions") && in["instructions"].is_string())
    messages.push_back({{"role", "system"}, {"content", in["instructions"]}});
  if (!in.contains("input")) bad_request("'input' is required: a string or a list of items", "input");
  const ojson& input = in["input"];
  if (input.is_string()) {
    messages.push_back({{"role", "user"}, {"content", input}});
  } else if (input.is_array() && !input.empty()) {
    for (std::size_t i = 0; i < input.size(); ++i) {
      const ojson& item = input[i];
      const std::string where = fmt::format("input[{}]", i);
      if (!item.is_object()) bad_request(where + " must be an object", where);
      const std::string type = item.value("type", "message");
      if (type == "message") {
        std::string role = item.value("role", "");
        if (role == "developer") role = "system";
        if (!item.contains("content")) bad_request(where + " needs \"content\"", where);
        messages.push_back({{"role", role}, {"content", text_of(item["content"], where + ".content")}});
      } else if (type == "function_call") {
        ojson call = {{"id", item.value("call_id", "")},
                      {"type", "function"},
                      {"function", {{"name", item.value("name", "")}, {"arguments", item.value("arguments", "{}")}}}};
        // Calls one after the other belong to one assistant turn.
        if (!messages.empty() && messages.back()["role"] == "assistant" && messages.back().contains("tool_calls"))
          messages.back()["tool_calls"].push_back(call);
        else
          messages.push_back({{"role", "assistant"}, {"content", ""}, {"tool_calls", ojson::array({call})}});
      } else if (type == "function_call_output") {
        const ojson& output = item.contains("output") ? item["output"] : ojson("");
        messages.push_back({{"role", "tool"},
                            {"tool_call_id", item.value("call_id", "")},
                            {"content", output.is_string() ? output.get<std::string>() : output.dump()}});
      } else {
        bad_request(where + ": item type '" + type + "' is not supported", where);
      }
    }
  } else {
    bad_request("'input' must be a string or a non-empty list of items", "input");
  }
  out["messages"] = messages;

  if (in.contains("tools") && !in["tools"].is_null()) {
    if (!in["tools"].is_array()) bad_request("'tools' must be an array", "tools");
    ojson tools = ojson::array();
    for (std::size_t i = 0; i < in["tools"].size(); ++i) {
      const ojson& t = in["tools"][i];
      if (!t.is_object() || t.value("type", "") != "function")
        bad_request(fmt::format("tools[{}]: only function tools are supported (no built-in tools)", i), fmt::format("tools[{}]", i));
      ojson f = {{"name", t.value("name", "")}};
      if (t.contains("description")) f["description"] = t["description"];
      if (t.contains("parameters") && !t["parameters"].is_null()) f["parameters"] = t["parameters"];
      tools.push_back({{"type", "function"}, {"function", f}});
    }
    out["tools"] = tools;
  }
  if (in.contains("tool_choice") && !in["tool_choice"].is_null()) {
    const ojson& c = in["tool_choice"];
    if (c.is_object() && c.value("type", "") == "function" && c.contains("name"))
      out["tool_choice"] = {{"type", "function"}, {"function", {{"name", c["name"]}}}};
    else
      out["tool_choice"] = c;
  }
  if (in.contains("text") && in["text"].is_object() && in["text"].contains("format")) {
    const ojson& f = in["text"]["format"];
    const std::string type = f.is_object() ? f.value("type", "") : "";
    if (type == "json_schema")
      out["response_format"] = {{"type", "json_schema"},
                                {"json_schema", {{"name", f.value("name", "format")},
                                                 {"schema", f.value("schema", ojson())}}}};
    else
      out["response_format"] = f;
  }
  try {
    return request_from_json(out, RequestKind::kChat);
  } catch (ApiError& e) {
    if (e.param == "max_tokens") e.param = "max_output_tokens";
    if (e.param.rfind("response_format", 0) == 0) e.param = "text.format";
    throw;
  }
}

json ResponsesFormat::output_items(const Answer& answer) const {
  json items = json::array();
  if (!answer.text.empty() || answer.calls.empty())
    items.push_back({{"type", "message"},
                     {"id", "msg_" + id_},
                     {"status", "completed"},
                     {"role", "assistant"},
                     {"content", json::array({{{"type", "output_text"},
                                               {"text", answer.text},
                                               {"annotations", json::array()}}})}});
  for (std::size_t i = 0; i < answer.calls.size(); ++i)
    items.push_back({{"type", "function_call"},
                     {"id", fmt::format("fc_{}_{}", id_, i)},
                     {"call_id", fmt::format("call_{}_{}", id_, i)},
                     {"name", answer.calls[i].name},
                     {"arguments", answer.calls[i].arguments.dump()},
                     {"status", "completed"}});
  return items;
}

json ResponsesFormat::response(const Answer* answer, const engine::GenerationStats* stats) const {
  const bool cut = answer && answer->finish == "length";
  json r = {{"id", "resp_" + id_},
            {"object", "response"},
            {"created_at", created_},
            {"status", !answer ? "in_progress" : cut ? "incomplete" : "completed"},
            {"error", nullptr},
            {"incomplete_details", cut ? json{{"reason", "max_output_tokens"}} : json(nullptr)},
            {"model", model_},
            {"output", answer ? output_items(*answer) : json::array()},
            {"parallel_tool_calls", true},
            {"tools", json::array()},
            {"metadata", json::object()}};
  const int input = stats ? stats->prompt_tokens : prompt_tokens_;
  const int output = stats ? stats->generated_tokens : 0;
  r["usage"] = {{"input_tokens", input},
                {"input_tokens_details", {{"cached_tokens", stats ? stats->cached_prompt_tokens : 0}}},
                {"output_tokens", output},
                {"output_tokens_details", {{"reasoning_tokens", 0}}},
                {"total_tokens", input + output}};
  return r;
}

std::string ResponsesFormat::event(const char* type, json data) {
  data["type"] = type;
  data["sequence_number"] = sequence_++;
  return named_event(type, data);
}

std::string ResponsesFormat::start(bool held) {
  std::string out = event("response.created", {{"response", response(nullptr, nullptr)}});
  out += event("response.in_progress", {{"response", response(nullptr, nullptr)}});
  if (!held) {
    out += event("response.output_item.added",
                 {{"output_index", 0},
                  {"item", {{"type", "message"}, {"id", "msg_" + id_}, {"status", "in_progress"},
                            {"role", "assistant"}, {"content", json::array()}}}});
    out += event("response.content_part.added",
                 {{"item_id", "msg_" + id_}, {"output_index", 0}, {"content_index", 0},
                  {"part", {{"type", "output_text"}, {"text", ""}, {"annotations", json::array()}}}});
  }
  return out;
}

std::string ResponsesFormat::piece(std::string_view text) {
  return event("response.output_text.delta", {{"item_id", "msg_" + id_},
                                              {"output_index", 0},
                                              {"content_index", 0},
                                              {"delta", text},
                                              {"logprobs", json::array()}});
}

std::string ResponsesFormat::end(const Answer& answer, const engine::GenerationStats& stats,
                                 bool held) {
  std::string out;
  const json items = output_items(answer);
  for (std::size_t index = 0; index < items.size(); ++index) {
    const json& item = items[index];
    const bool message = item["type"] == "message";
    if (held || !message) {
      json opening = item;
      opening["status"] = "in_progress";
      if (message) opening["content"] = json::array();
      else opening["arguments"] = "";
      out += event("response.output_item.added", {{"output_index", index}, {"item", opening}});
    }
    if (message) {
      const json part = item["content"][0];
      if (held) {
        out += event("response.content_part.added",
                     {{"item_id", item["id"]}, {"output_index", index}, {"content_index", 0},
                      {"part", {{"type", "output_text"}, {"text", ""}, {"annotations", json::array()}}}});
        out += event("response.output_text.delta", {{"item_id", item["id"]}, {"output_index", index},
                                                    {"content_index", 0}, {"delta", part["text"]},
                                                    {"logprobs", json::array()}});
      }
      out += event("response.output_text.done", {{"item_id", item["id"]}, {"output_index", index},
                                                 {"content_index", 0}, {"text", part["text"]},
                                                 {"logprobs", json::array()}});
      out += event("response.content_part.done", {{"item_id", item["id"]}, {"output_index", index},
                                                  {"content_index", 0}, {"part", part}});
    } else {
      out += event("response.function_call_arguments.delta",
                   {{"item_id", item["id"]}, {"output_index", index}, {"delta", item["arguments"]}});
      out += event("response.function_call_arguments.done",
                   {{"item_id", item["id"]}, {"output_index", index}, {"arguments", item["arguments"]}});
    }
    out += event("response.output_item.done", {{"output_index", index}, {"item", item}});
  }
  const json done = response(&answer, &stats);
  out += event(done["status"] == "incomplete" ? "response.incomplete" : "response.completed",
               {{"response", done}});
  return out;
}

std::string ResponsesFormat::stream_error(std::string_view message) {
  return event("error", {{"code", "server_error"}, {"message", message}, {"param", nullptr}});
}

json ResponsesFormat::whole(const Answer& answer, const engine::GenerationStats& stats) {
  return response(&answer, &stats);
}

}  // namespace herd::api
