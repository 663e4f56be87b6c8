#include "model/chat_template.h"

#include <nlohmann/json.hpp>

#include "model/chat_template_jinja.h"
#include "model/tokenizer.h"
#include "util/error.h"

namespace herd::model {
namespace {

jinja::Value to_value(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return jinja::Value::none();
    case nlohmann::json::value_t::boolean:
      return jinja::Value(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return jinja::Value(j.get<std::int64_t>());
    case nlohmann::json::value_t::number_float:
      return jinja::Value(j.get<double>());
    case nlohmann::json::value_t::string:
      return jinja::Value(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      jinja::Array a;
      for (const auto& item : j) a.push_back(to_value(item));
      return jinja::Value(std::move(a));
    }
    case nlohmann::json::value_t::object: {
      jinja::Object o;
      for (const auto& [k, v] : j.items()) o.set(k, to_value(v));
      return jinja::Value(std::move(o));
    }
    default:
      return jinja::Value();
  }
}

std::string default_bos(ChatFamily family) {
  switch (family) {
    case ChatFamily::kLlama3:
      return "<|begin_of_text|>";
    case ChatFamily::kMistral:
    case ChatFamily::kLlama2:
      return "<s>";
    case ChatFamily::kDeepSeek:
      return "<｜begin▁of▁sentence｜>";
    case ChatFamily::kChatML:
      return "";
  }
  return "";
}

std::string default_eos(ChatFamily family) {
  switch (family) {
    case ChatFamily::kLlama3:
      return "<|eot_id|>";
    case ChatFamily::kMistral:
    case ChatFamily::kLlama2:
      return "</s>";
    case ChatFamily::kDeepSeek:
      return "<｜end▁of▁sentence｜>";
    case ChatFamily::kChatML:
      return "<|im_end|>";
  }
  return "";
}

std::string trim(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  std::size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// System messages for the [INST] families are folded into the first user turn.
std::string take_system(std::span<const ChatMessage>& messages) {
  std::string system;
  while (!messages.empty() && messages.front().role == "system") {
    system += (system.empty() ? "" : "\n\n") + messages.front().content;
    messages = messages.subspan(1);
  }
  return system;
}

}  // namespace

const char* chat_family_name(ChatFamily family) {
  switch (family) {
    case ChatFamily::kChatML:
      return "chatml";
    case ChatFamily::kLlama3:
      return "llama3";
    case ChatFamily::kMistral:
      return "mistral";
    case ChatFamily::kDeepSeek:
      return "deepseek";
    case ChatFamily::kLlama2:
      return "llama2";
  }
  return "?";
}

std::optional<ChatFamily> detect_chat_family(std::string_view text) {
  auto has = [&](std::string_view s) { return text.find(s) != std::string_view::npos; };
  if (has("<|im_start|>")) return ChatFamily::kChatML;
  if (has("<|start_header_id|>")) return ChatFamily::kLlama3;
  if (has("<｜User｜>") || has("<｜Assistant｜>")) return ChatFamily::kDeepSeek;
  if (has("<<SYS>>")) return ChatFamily::kLlama2;
  if (has("[INST]")) return ChatFamily::kMistral;
  return std::nullopt;
}

ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;
ChatTemplate::~ChatTemplate() = default;

ChatTemplate ChatTemplate::builtin(ChatFamily family, std::string bos_token,
                                   std::string eos_token) {
  ChatTemplate t;
  t.family_ = family;
  t.bos_token_ = bos_token.empty() ? default_bos(family) : std::move(bos_token);
  t.eos_token_ = eos_token.empty() ? default_eos(family) : std::move(eos_token);
  return t;
}

ChatTemplate ChatTemplate::from_source(std::string_view source, std::string bos_token,
                                       std::string eos_token, ChatFamily fallback) {
  if (source.empty()) {
    ChatTemplate t = builtin(fallback, std::move(bos_token), std::move(eos_token));
    t.fallback_reason_ = fmt::format("the model has no chat template; using the built-in {} format",
                                     chat_family_name(fallback));
    return t;
  }
  try {
    ChatTemplate t;
    t.jinja_ = std::make_unique<jinja::Template>(jinja::Template::parse(source));
    t.bos_token_ = std::move(bos_token);
    t.eos_token_ = std::move(eos_token);
    if (auto family = detect_chat_family(source)) t.family_ = *family;
    return t;
  } catch (const FormatError& e) {
    auto family = detect_chat_family(source);
    if (!family) {
      throw FormatError(std::string(e.what()) +
                        " (and its format is not one of the built-in families; pass a template "
                        "this interpreter supports)");
    }
    ChatTemplate t = builtin(*family, std::move(bos_token), std::move(eos_token));
    t.fallback_reason_ = fmt::format(
        "the model's chat template could not be parsed ({}); using "
        "the built-in {} format",
        e.what(), chat_family_name(*family));
    return t;
  }
}

ChatTemplate ChatTemplate::for_model(std::string_view source, const Tokenizer& tokenizer) {
  auto text_of = [&](std::int32_t id) {
    return id >= 0 ? tokenizer.token_text(id) : std::string();
  };
  ChatFamily fallback = ChatFamily::kChatML;
  if (tokenizer.find_token("<|im_start|>") >= 0)
    fallback = ChatFamily::kChatML;
  else if (tokenizer.find_token("<|start_header_id|>") >= 0)
    fallback = ChatFamily::kLlama3;
  else if (tokenizer.find_token("<｜User｜>") >= 0)
    fallback = ChatFamily::kDeepSeek;
  else if (tokenizer.find_token("[INST]") >= 0)
    fallback = ChatFamily::kMistral;
  return from_source(source, text_of(tokenizer.bos()), text_of(tokenizer.eos()), fallback);
}

std::string ChatTemplate::render(std::span<const ChatMessage> messages,
                                 bool add_generation_prompt) const {
  if (!jinja_) return render_builtin(messages, add_generation_prompt);
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const ChatMessage& m : messages) {
    list.push_back({{"role", m.role}, {"content", m.content}});
  }
  return render_json(list, add_generation_prompt);
}

std::string ChatTemplate::render_json(const nlohmann::ordered_json& messages,
                                      bool add_generation_prompt,
                                      const nlohmann::ordered_json* extra) const {
  if (!messages.is_array()) fail_argument("chat messages must be a JSON array of objects");
  if (!jinja_) {
    std::vector<ChatMessage> plain;
    for (const auto& m : messages) {
      if (!m.is_object() || !m.contains("role")) {
        fail_argument("every chat message must be an object with a \"role\"");
      }
      const auto& content = m.value("content", nlohmann::ordered_json());
      plain.push_back({m["role"].get<std::string>(),
                       content.is_string() ? content.get<std::string>() : std::string()});
    }
    return render_builtin(plain, add_generation_prompt);
  }
  jinja::Object context;
  context.set("messages", to_value(messages));
  context.set("add_generation_prompt", jinja::Value(add_generation_prompt));
  context.set("bos_token", jinja::Value(bos_token_));
  context.set("eos_token", jinja::Value(eos_token_));
  if (extra && extra->is_object()) {
    for (const auto& [k, v] : extra->items()) context.set(k, to_value(v));
  }
  return jinja_->render(context);
}

std::string ChatTemplate::render_builtin(std::span<const ChatMessage> messages,
                                         bool add_generation_prompt) const {
  std::string out;
  switch (family_) {
    case ChatFamily::kChatML:
      for (const ChatMessage& m : messages) {
        out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      }
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;
    case ChatFamily::kLlama3:
      out = bos_token_;
      for (const ChatMessage& m : messages) {
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) +
               "<|eot_id|>";
      }
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    case ChatFamily::kDeepSeek:
      out = bos_token_;
      for (const ChatMessage& m : messages) {
        if (m.role == "system")
          out += m.content;
        else if (m.role == "user")
          out += "<｜User｜>" + m.content;
        else
          out += "<｜Assistant｜>" + m.content + eos_token_;
      }
      if (add_generation_prompt) out += "<｜Assistant｜>";
      return out;
    case ChatFamily::kMistral: {
      std::string system = take_system(messages);
      out = bos_token_;
      for (const ChatMessage& m : messages) {
        if (m.role == "assistant") {
          out += m.content + eos_token_;
          continue;
        }
        std::string content = system.empty() ? m.content : system + "\n\n" + m.content;
        system.clear();
        out += "[INST] " + content + " [/INST]";
      }
      return out;  // the prompt already ends where the answer starts
    }
    case ChatFamily::kLlama2: {
      std::string system = take_system(messages);
      for (const ChatMessage& m : messages) {
        if (m.role == "assistant") {
          out.append(" ").append(trim(m.content)).append(" ").append(eos_token_);
          continue;
        }
        std::string content = trim(m.content);
        if (!system.empty()) content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
        system.clear();
        out += bos_token_ + "[INST] " + content + " [/INST]";
      }
      return out;
    }
  }
  return out;
}

}  // namespace herd::model
