#include "api/tool_calls.h"

#include <optional>

namespace herd::api {

using ojson = nlohmann::ordered_json;

namespace {

std::string trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return "";
  const auto last = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(first, last - first + 1));
}

bool known_tool(const ojson& tools, const std::string& name) {
  for (const auto& t : tools)
    if (t["function"].value("name", "") == name) return true;
  return false;
}

// {"name": ..., "arguments" | "parameters": {...} or a JSON string of one}.
std::optional<ToolCall> call_of(const ojson& j, const ojson& tools) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return std::nullopt;
  ToolCall call;
  call.name = j["name"].get<std::string>();
  if (!tools.is_null() && !known_tool(tools, call.name)) return std::nullopt;
  const char* key = j.contains("arguments") ? "arguments" : "parameters";
  ojson args = j.value(key, ojson::object());
  if (args.is_string()) args = ojson::parse(args.get<std::string>(), nullptr, false);
  if (!args.is_object()) return std::nullopt;
  call.arguments = std::move(args);
  return call;
}

}  // namespace

std::string hermes_tools_prompt(const ojson& tools) {
  // Hermes' layout, in fewer words than Qwen's templates use: a model without a template was not
  // trained on the wording, and small contexts need the room.
  std::string out = "# Tools\n<tools>";
  for (const auto& t : tools) out += "\n" + t.dump(-1, ' ', false, ojson::error_handler_t::replace);
  out +=
      "\n</tools>\nTo call a function, answer with <tool_call>\n{\"name\": <function-name>, "
      "\"arguments\": <args-json-object>}\n</tool_call>";
  return out;
}

std::vector<model::ChatMessage> hermes_messages(const ojson& messages, const ojson& tools) {
  std::vector<model::ChatMessage> out;
  const std::string described = tools.empty() ? "" : hermes_tools_prompt(tools);
  bool system_seen = false;
  for (const auto& m : messages) {
    const std::string role = m.value("role", "");
    std::string content = m.contains("content") && m["content"].is_string()
                              ? m["content"].get<std::string>()
                              : std::string();
    if (role == "system" && !system_seen) {
      system_seen = true;
      out.push_back({"system", described.empty() ? content : content + "\n\n" + described});
      continue;
    }
    if (!system_seen && !described.empty()) {
      out.push_back({"system", described});
      system_seen = true;
    }
    if (role == "assistant" && m.contains("tool_calls") && m["tool_calls"].is_array()) {
      for (const auto& c : m["tool_calls"]) {
        const ojson& f = c["function"];
        ojson call = {{"name", f.value("name", "")}, {"arguments", f.value("arguments", ojson::object())}};
        if (!content.empty()) content += "\n";
        content += "<tool_call>\n" + call.dump(-1, ' ', false, ojson::error_handler_t::replace) +
                   "\n</tool_call>";
      }
      out.push_back({"assistant", content});
    } else if (role == "tool") {
      // Results go back in a user turn; consecutive ones share it (as Qwen's template does).
      const std::string block = "<tool_response>\n" + content + "\n</tool_response>";
      if (!out.empty() && out.back().role == "user" &&
          out.back().content.rfind("<tool_response>", 0) == 0)
        out.back().content += "\n" + block;
      else
        out.push_back({"user", block});
    } else {
      out.push_back({role, content});
    }
  }
  return out;
}

std::vector<ToolCall> parse_tool_calls(std::string_view text, const ojson& tools,
                                       std::string& content) {
  std::vector<ToolCall> calls;
  std::string rest;
  // Hermes: <tool_call>{...}</tool_call>, the last one possibly unclosed (the answer ended).
  constexpr std::string_view open = "<tool_call>", close = "</tool_call>";
  std::size_t pos = 0;
  while (true) {
    const std::size_t start = text.find(open, pos);
    if (start == std::string_view::npos) {
      rest += text.substr(pos);
      break;
    }
    const std::size_t body = start + open.size();
    const std::size_t end = text.find(close, body);
    const std::string inside(text.substr(body, end == std::string_view::npos ? text.npos : end - body));
    const auto call = call_of(ojson::parse(trim(inside), nullptr, false), tools);
    if (call) {
      rest += text.substr(pos, start - pos);
      calls.push_back(*call);
    } else {
      rest += text.substr(pos, (end == std::string_view::npos ? text.size() : end + close.size()) - pos);
    }
    if (end == std::string_view::npos) break;
    pos = end + close.size();
  }
  if (calls.empty()) {
    // Mistral: [TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]
    constexpr std::string_view mistral = "[TOOL_CALLS]";
    if (const auto at = text.find(mistral); at != std::string_view::npos) {
      const ojson list = ojson::parse(trim(text.substr(at + mistral.size())), nullptr, false);
      if (list.is_array()) {
        for (const auto& j : list)
          if (auto call = call_of(j, tools)) calls.push_back(*call);
        if (!calls.empty()) rest = std::string(text.substr(0, at));
      }
    }
  }
  if (calls.empty()) {
    // DeepSeek V3/R1: <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{...}\n```<｜tool▁call▁end｜>
    constexpr std::string_view begin = "<｜tool▁call▁begin｜>", sep = "<｜tool▁sep｜>",
                               end = "<｜tool▁call▁end｜>", calls_begin = "<｜tool▁calls▁begin｜>";
    std::size_t at = text.find(begin);
    const std::size_t first = text.find(calls_begin) != std::string_view::npos ? text.find(calls_begin) : at;
    while (at != std::string_view::npos) {
      const std::size_t body = at + begin.size();
      const std::size_t stop = text.find(end, body);
      const std::string_view call = text.substr(body, stop == std::string_view::npos ? text.npos : stop - body);
      const std::size_t s = call.find(sep);
      if (s != std::string_view::npos) {
        const std::string_view rest_of = call.substr(s + sep.size());
        const std::size_t nl = rest_of.find('\n');
        std::string name = trim(rest_of.substr(0, nl));
        std::string args = nl == std::string_view::npos ? "{}" : trim(rest_of.substr(nl + 1));
        if (args.rfind("```json", 0) == 0) args = args.substr(7);
        if (args.size() >= 3 && args.compare(args.size() - 3, 3, "```") == 0) args.resize(args.size() - 3);
        if (auto c = call_of(ojson{{"name", name}, {"arguments", ojson::parse(trim(args), nullptr, false)}}, tools))
          calls.push_back(*c);
      }
      if (stop == std::string_view::npos) break;
      at = text.find(begin, stop + end.size());
    }
    if (!calls.empty()) rest = std::string(text.substr(0, first));
  }
  if (calls.empty()) {
    // Llama 3.1: the whole answer is one call, after <|python_tag|> or not.
    std::string whole = trim(text);
    constexpr std::string_view tag = "<|python_tag|>";
    if (whole.rfind(tag, 0) == 0) whole = trim(std::string_view(whole).substr(tag.size()));
    if (auto call = call_of(ojson::parse(whole, nullptr, false), tools)) {
      calls.push_back(*call);
      rest.clear();
    }
  }
  content = calls.empty() ? std::string(text) : trim(rest);
  return calls;
}

ojson forced_call_schema(const ojson& tools, const std::string& only) {
  ojson options = ojson::array();
  for (const auto& t : tools) {
    const ojson& f = t["function"];
    const std::string name = f.value("name", "");
    if (!only.empty() && name != only) continue;
    ojson params = f.contains("parameters") ? f["parameters"]
                                            : ojson{{"type", "object"}, {"properties", ojson::object()}};
    options.push_back({{"type", "object"},
                       {"properties", {{"name", {{"const", name}}}, {"arguments", params}}},
                       {"required", {"name", "arguments"}},
                       {"additionalProperties", false}});
  }
  if (options.size() == 1) return options[0];
  return {{"anyOf", options}};
}

std::optional<ToolCall> read_forced_call(std::string_view text) {
  return call_of(ojson::parse(text, nullptr, false), ojson());
}

}  // namespace herd::api
