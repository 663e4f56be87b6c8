#include "api/openai_schema.h"

#include "api/answer_format.h"
#include "api/tool_calls.h"
#include "util/error.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

namespace herd::api {

using nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

double number_field(const ojson& body, const char* key, double lo, double hi, double fallback) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_number()) bad_request(fmt::format("'{}' must be a number", key), key);
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < lo || v > hi)
    bad_request(fmt::format("'{}' is {}, but must be between {} and {}", key, v, lo, hi), key);
  return v;
}

std::int64_t int_field(const ojson& body, const char* key, std::int64_t lo, std::int64_t hi,
                       std::int64_t fallback) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) bad_request(fmt::format("'{}' must be an integer", key), key);
  // Seeds are often sent as large unsigned numbers.
  const std::int64_t v =
      it->is_number_unsigned()
          ? static_cast<std::int64_t>(std::min<std::uint64_t>(
                it->get<std::uint64_t>(), std::numeric_limits<std::int64_t>::max()))
          : it->get<std::int64_t>();
  if (v < lo || v > hi)
    bad_request(fmt::format("'{}' is {}, but must be between {} and {}", key, v, lo, hi), key);
  return v;
}

// OpenAI content: a string, or an array of parts of which only {"type":"text"} is understood.
std::string message_content(const ojson& content, std::size_t index) {
  const std::string param = fmt::format("messages[{}].content", index);
  if (content.is_null()) return "";
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) bad_request(param + " must be a string or an array of text parts", param);
  std::string text;
  for (const ojson& part : content) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string())
      bad_request(param +
                     ": only parts of the form {\"type\":\"text\",\"text\":\"...\"} are "
                     "supported (this server has no image or audio input)", param);
    text += part["text"].get<std::string>();
  }
  return text;
}

std::vector<model::ChatMessage> parse_messages(const ojson& body) {
  auto it = body.find("messages");
  if (it == body.end() || it->is_null())
    bad_request("'messages' is required: an array of {\"role\", \"content\"} objects", "messages");
  if (!it->is_array() || it->empty())
    bad_request("'messages' must be a non-empty array of {\"role\", \"content\"} objects", "messages");
  std::vector<model::ChatMessage> out;
  for (std::size_t i = 0; i < it->size(); ++i) {
    const ojson& m = (*it)[i];
    if (!m.is_object())
      bad_request(fmt::format("messages[{}] must be an object", i), fmt::format("messages[{}]", i));
    auto role = m.find("role");
    if (role == m.end() || !role->is_string())
      bad_request(fmt::format("messages[{}].role must be a string", i), fmt::format("messages[{}].role", i));
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";  // OpenAI's newer name for the system role
    if (r != "system" && r != "user" && r != "assistant" && r != "tool")
      bad_request(fmt::format("messages[{}].role '{}' is not one of system, user, assistant, tool", i, r), fmt::format("messages[{}].role", i));
    if (r == "assistant" && m.contains("tool_calls") && !m["tool_calls"].is_null() &&
        !m["tool_calls"].is_array())
      bad_request(fmt::format("messages[{}].tool_calls must be an array", i), fmt::format("messages[{}].tool_calls", i));
    out.push_back({r, message_content(m.value("content", ojson()), i)});
  }
  return out;
}

// The messages for templates: role and content as parsed, tool calls with their arguments as
// objects (templates write them as JSON), tool results with their call's id.
ojson messages_json(const ojson& body, const std::vector<model::ChatMessage>& parsed) {
  ojson out = ojson::array();
  const ojson& list = body["messages"];
  for (std::size_t i = 0; i < parsed.size(); ++i) {
    const ojson& m = list[i];
    ojson msg = {{"role", parsed[i].role}, {"content", parsed[i].content}};
    if (m.contains("tool_calls") && m["tool_calls"].is_array()) {
      ojson calls = ojson::array();
      for (std::size_t k = 0; k < m["tool_calls"].size(); ++k) {
        const ojson& c = m["tool_calls"][k];
        const std::string where = fmt::format("messages[{}].tool_calls[{}]", i, k);
        if (!c.is_object() || !c.contains("function") || !c["function"].is_object() ||
            !c["function"].contains("name") || !c["function"]["name"].is_string())
          bad_request(where + " must be {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}", where);
        ojson args = c["function"].value("arguments", ojson::object());
        if (args.is_string()) args = ojson::parse(args.get<std::string>(), nullptr, false);
        if (!args.is_object())
          bad_request(where + ".function.arguments must be a JSON object (as a string)", where + ".function.arguments");
        calls.push_back({{"id", c.value("id", "")},
                         {"type", "function"},
                         {"function", {{"name", c["function"]["name"]}, {"arguments", args}}}});
      }
      msg["tool_calls"] = calls;
    }
    if (m.contains("tool_call_id") && m["tool_call_id"].is_string()) msg["tool_call_id"] = m["tool_call_id"];
    if (m.contains("name") && m["name"].is_string()) msg["name"] = m["name"];
    out.push_back(std::move(msg));
  }
  return out;
}

std::shared_ptr<const grammar::Schema> compiled(const ojson& schema, const std::string& param) {
  try {
    return std::make_shared<const grammar::Schema>(grammar::compile_schema(schema));
  } catch (const InvalidArgument& e) {
    bad_request(fmt::format("{}: {}", param, e.what()), param);
  }
}

// tools, tool_choice and response_format (OpenAI's shapes).
void parse_tools_and_format(const ojson& body, CompletionRequest& request) {
  if (auto t = body.find("tools"); t != body.end() && !t->is_null()) {
    if (!t->is_array()) bad_request("'tools' must be an array of {\"type\": \"function\", \"function\": {...}}", "tools");
    for (std::size_t i = 0; i < t->size(); ++i) {
      const ojson& tool = (*t)[i];
      const std::string where = fmt::format("tools[{}]", i);
      if (!tool.is_object() || tool.value("type", "") != "function" || !tool.contains("function") ||
          !tool["function"].is_object())
        bad_request(where + " must be {\"type\": \"function\", \"function\": {\"name\", \"parameters\"}}", where);
      const ojson& f = tool["function"];
      if (!f.contains("name") || !f["name"].is_string() || f["name"].get<std::string>().empty() ||
          f["name"].get<std::string>().size() > 64)
        bad_request(where + ".function.name must be a name of 1 to 64 characters", where + ".function.name");
      if (f.contains("parameters") && !f["parameters"].is_null())
        compiled(f["parameters"], where + ".function.parameters");  // refused here, not later
      request.tools.push_back(tool);
    }
  }
  if (auto c = body.find("tool_choice"); c != body.end() && !c->is_null()) {
    if (c->is_string()) {
      const std::string v = c->get<std::string>();
      if (v == "auto") request.tool_choice = ToolChoice::kAuto;
      else if (v == "none") request.tool_choice = ToolChoice::kNone;
      else if (v == "required") request.tool_choice = ToolChoice::kRequired;
      else bad_request("'tool_choice' must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\"}}", "tool_choice");
    } else if (c->is_object() && c->contains("function") && (*c)["function"].is_object() &&
               (*c)["function"].contains("name") && (*c)["function"]["name"].is_string()) {
      request.tool_choice = ToolChoice::kNamed;
      request.tool_name = (*c)["function"]["name"].get<std::string>();
      bool found = false;
      for (const auto& tool : request.tools) found = found || tool["function"]["name"] == request.tool_name;
      if (!found)
        bad_request(fmt::format("tool_choice names the function '{}', which is not among 'tools'", request.tool_name), "tool_choice");
    } else {
      bad_request("'tool_choice' must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\"}}", "tool_choice");
    }
    if (request.tools.empty() && (request.tool_choice == ToolChoice::kRequired))
      bad_request("tool_choice \"required\" needs 'tools'", "tool_choice");
  }
  if (request.forced_call()) {
    request.output_schema = compiled(forced_call_schema(request.tools, request.tool_name), "tools");
    return;  // the call's schema is the answer's
  }
  if (auto f = body.find("response_format"); f != body.end() && !f->is_null()) {
    const std::string type = f->is_object() ? f->value("type", "") : "";
    if (type == "json_object") {
      request.output_schema = std::make_shared<const grammar::Schema>(grammar::any_object_schema());
    } else if (type == "json_schema") {
      const ojson js = f->value("json_schema", ojson());
      if (!js.is_object() || !js.contains("schema") || !js["schema"].is_object())
        bad_request("response_format.json_schema must be {\"name\", \"schema\": {...}}", "response_format.json_schema");
      request.output_schema = compiled(js["schema"], "response_format.json_schema.schema");
    } else if (type != "text") {
      bad_request("response_format.type must be \"text\", \"json_object\" or \"json_schema\"", "response_format");
    }
  }
}

void parse_prompt(const ojson& body, CompletionRequest& request) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null())
    bad_request("'prompt' is required: a string or an array of token ids", "prompt");
  if (it->is_string()) {
    request.prompt = it->get<std::string>();
  } else if (it->is_array() && !it->empty() && (*it)[0].is_number_integer()) {
    for (const ojson& id : *it) {
      if (!id.is_number_integer() || id.get<std::int64_t>() < 0 ||
          id.get<std::int64_t>() > std::numeric_limits<std::int32_t>::max())
        bad_request("'prompt' as an array must hold non-negative token ids only", "prompt");
      request.prompt_ids.push_back(id.get<std::int32_t>());
    }
  } else if (it->is_array() && it->size() == 1 && (*it)[0].is_string()) {
    request.prompt = (*it)[0].get<std::string>();
  } else {
    bad_request("'prompt' must be a string, a one-element array of strings, or an array of token "
        "ids (several prompts per request are not supported)", "prompt");
  }
  if (request.prompt.empty() && request.prompt_ids.empty()) bad_request("'prompt' is empty", "prompt");
}

std::vector<std::string> parse_stop(const ojson& body) {
  auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return {};
  if (it->is_string()) {
    if (it->get<std::string>().empty()) return {};
    return {it->get<std::string>()};
  }
  if (!it->is_array() || it->size() > 16)
    bad_request("'stop' must be a string or an array of at most 16 strings", "stop");
  std::vector<std::string> out;
  for (const ojson& s : *it) {
    if (!s.is_string()) bad_request("'stop' must be a string or an array of strings", "stop");
    if (!s.get<std::string>().empty()) out.push_back(s.get<std::string>());
  }
  return out;
}

void parse_sampling(const ojson& body, CompletionRequest& request) {
  auto& p = request.params;
  auto& s = p.sampling;
  std::int64_t max_tokens = int_field(body, "max_tokens", 1, 1 << 24, -1);
  max_tokens = int_field(body, "max_completion_tokens", 1, 1 << 24, max_tokens);
  p.max_tokens = static_cast<int>(max_tokens);  // -1: until the context is full (OpenAI's default)
  s.temperature = static_cast<float>(number_field(body, "temperature", 0.0, 2.0, s.temperature));
  s.top_p = static_cast<float>(number_field(body, "top_p", 0.0, 1.0, s.top_p));
  if (s.top_p == 0.0f) bad_request("'top_p' must be greater than 0", "top_p");
  s.top_k = static_cast<int>(int_field(body, "top_k", 0, 1 << 20, s.top_k));
  s.min_p = static_cast<float>(number_field(body, "min_p", 0.0, 1.0, s.min_p));
  s.presence_penalty =
      static_cast<float>(number_field(body, "presence_penalty", -2.0, 2.0, s.presence_penalty));
  s.frequency_penalty =
      static_cast<float>(number_field(body, "frequency_penalty", -2.0, 2.0, s.frequency_penalty));
  s.repeat_penalty =
      static_cast<float>(number_field(body, "repeat_penalty", 0.01, 10.0, s.repeat_penalty));
  s.repeat_last_n = static_cast<int>(int_field(body, "repeat_last_n", 0, 1 << 20, s.repeat_last_n));
  auto seed = body.find("seed");
  if (seed != body.end() && !seed->is_null()) {
    if (!seed->is_number_integer()) bad_request("'seed' must be an integer", "seed");
    s.seed = seed->is_number_unsigned() ? seed->get<std::uint64_t>()
                                        : static_cast<std::uint64_t>(seed->get<std::int64_t>());
  }
  p.stop = parse_stop(body);
  if (auto bias = body.find("logit_bias"); bias != body.end() && !bias->is_null()) {
    if (!bias->is_object())
      bad_request("'logit_bias' must be an object of token ids to numbers in [-100, 100]",
                  "logit_bias");
    for (const auto& [key, value] : bias->items()) {
      std::size_t used = 0;
      long id = -1;
      try {
        id = std::stol(key, &used);
      } catch (const std::exception&) {
      }
      if (used != key.size() || id < 0 || id > (1L << 30))
        bad_request(fmt::format("'logit_bias' key '{}' is not a token id", key), "logit_bias");
      if (!value.is_number() || !(value.get<double>() >= -100 && value.get<double>() <= 100))
        bad_request(fmt::format("'logit_bias' of token {} must be a number in [-100, 100]", key),
                    "logit_bias");
      p.logit_bias.emplace_back(static_cast<std::int32_t>(id), value.get<float>());
    }
  }
  p.ignore_eos = body.value("ignore_eos", false);
  // llama.cpp server's switch: false computes the whole prompt even where a cached prefix exists.
  if (auto c = body.find("cache_prompt"); c != body.end()) {
    if (!c->is_boolean()) bad_request("'cache_prompt' must be true or false", "cache_prompt");
    p.cache_prompt = c->get<bool>();
  }
  if (int_field(body, "n", 1, 1, 1) != 1) bad_request("'n' must be 1", "n");
}

}  // namespace

CompletionRequest parse_request(std::string_view body, RequestKind kind) {
  check_json_depth(body);
  // Ordered: schemas and tools are written in the order the client gave their keys.
  const ojson j = ojson::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    bad_request(
        "the request body is not valid JSON (send Content-Type: application/json with a JSON "
        "object)");
  return request_from_json(j, kind);
}

CompletionRequest request_from_json(const ojson& j, RequestKind kind) {
  if (!j.is_object()) bad_request("the request body must be a JSON object");
  CompletionRequest request;
  request.kind = kind;
  request.params.sampling.seed = engine::kRandomSeed;
  if (auto m = j.find("model"); m != j.end() && !m->is_null()) {
    if (!m->is_string()) bad_request("'model' must be a string", "model");
    request.model = m->get<std::string>();
  }
  if (kind == RequestKind::kChat) {
    request.messages = parse_messages(j);
    request.messages_json = messages_json(j, request.messages);
    parse_tools_and_format(j, request);
  } else {
    parse_prompt(j, request);
  }
  parse_sampling(j, request);
  if (auto s = j.find("stream"); s != j.end() && !s->is_null()) {
    if (!s->is_boolean()) bad_request("'stream' must be true or false", "stream");
    request.stream = s->get<bool>();
  }
  if (auto o = j.find("stream_options"); o != j.end() && o->is_object())
    request.include_usage = o->value("include_usage", false);
  return request;
}

json error_body(std::string_view message, std::string_view type, std::string_view param,
                std::string_view code) {
  json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  return {{"error", e}};
}

std::string finish_reason(const engine::GenerationStats& stats) {
  return stats.finish_reason == "length" ? "length" : "stop";
}

json usage_json(const engine::GenerationStats& stats) {
  return {{"prompt_tokens", stats.prompt_tokens},
          {"completion_tokens", stats.generated_tokens},
          {"total_tokens", stats.prompt_tokens + stats.generated_tokens},
          // As OpenAI reports prompt caching: prompt tokens whose KV was reused, not recomputed.
          {"prompt_tokens_details", {{"cached_tokens", stats.cached_prompt_tokens}}}};
}

json openai_message(const Answer& answer, const std::string& call_id_prefix) {
  if (answer.calls.empty()) return {{"role", "assistant"}, {"content", answer.text}};
  json list = json::array();
  for (std::size_t i = 0; i < answer.calls.size(); ++i)
    list.push_back({{"id", fmt::format("{}_{}", call_id_prefix, i)},
                    {"type", "function"},
                    {"function",
                     {{"name", answer.calls[i].name},
                      {"arguments", answer.calls[i].arguments.dump(
                                        -1, ' ', false, ojson::error_handler_t::replace)}}}});
  return {{"role", "assistant"},
          {"content", answer.text.empty() ? json(nullptr) : json(answer.text)},
          {"tool_calls", list}};
}

json completion_response(RequestKind kind, const ResponseIds& ids,
                         const engine::GenerationResult& result, const Answer* answer) {
  json choice = {{"index", 0}, {"finish_reason", finish_reason(result.stats)}};
  if (kind == RequestKind::kChat) {
    if (answer) {
      choice["message"] = openai_message(*answer, "call_" + ids.id);
      choice["finish_reason"] = answer->finish;
    } else {
      choice["message"] = {{"role", "assistant"}, {"content", result.text}};
    }
  } else {
    choice["text"] = result.text;
    choice["logprobs"] = nullptr;
  }
  return {{"id", ids.id},
          {"object", kind == RequestKind::kChat ? "chat.completion" : "text_completion"},
          {"created", ids.created},
          {"model", ids.model},
          {"choices", json::array({choice})},
          {"usage", usage_json(result.stats)}};
}

json stream_chunk(RequestKind kind, const ResponseIds& ids, std::string_view text,
                  const std::string& finish, bool role_chunk) {
  json choice = {{"index", 0}, {"finish_reason", nullptr}};
  if (!finish.empty()) choice["finish_reason"] = finish;
  if (kind == RequestKind::kChat) {
    json delta = json::object();
    if (role_chunk) delta["role"] = "assistant";
    if (!text.empty() || (finish.empty() && !role_chunk)) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  return {{"id", ids.id},
          {"object", kind == RequestKind::kChat ? "chat.completion.chunk" : "text_completion"},
          {"created", ids.created},
          {"model", ids.model},
          {"choices", json::array({choice})}};
}

std::string sse_event(const json& body) {
  // Invalid UTF-8 (a model can emit it) is replaced rather than thrown on.
  return "data: " + body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

}  // namespace herd::api
