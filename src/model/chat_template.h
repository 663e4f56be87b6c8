// Chat templates: a conversation ({role, content} messages) -> the prompt text a model was
// trained on. The model's own Jinja template (GGUF `tokenizer.chat_template`, or
// tokenizer_config.json "chat_template") is rendered by a small Jinja interpreter
// (chat_template_jinja.h) with the variables Hugging Face's apply_chat_template provides:
// messages, add_generation_prompt, bos_token, eos_token, plus any extras (tools,
// enable_thinking ...).
//
// Fallback (no template, or one this interpreter cannot parse): a built-in family format.
//   - template absent: the family given by the caller; ChatTemplate::for_model picks it from
//     the vocabulary's marker tokens (<|im_start|> ChatML, <|start_header_id|> Llama 3,
//     <｜User｜> DeepSeek, [INST] Mistral), else ChatML (llama.cpp's default too).
//   - template present but unparsable: the family recognised from marker strings in the
//     template text (detect_chat_family); if none is recognised the FormatError is thrown.
//   fallback_reason() says which and why, for logging.
// Errors while rendering are never hidden by a fallback: raise_exception() in a template (e.g.
// "roles must alternate") throws herd::InvalidArgument, other render failures herd::FormatError.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace herd::model {

class Tokenizer;

namespace jinja {
class Template;
}

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", "tool"
  std::string content;
};

// Built-in formats, written as each family's reference template renders them.
enum class ChatFamily {
  kChatML,   // Qwen 2/3, SmolLM: <|im_start|>role\ncontent<|im_end|>\n ... <|im_start|>assistant\n
  kLlama3,   // <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
  kMistral,  // <s>[INST] user [/INST]answer</s> (Mistral v0.1/v0.2; system joins the 1st user turn)
  kDeepSeek,  // <｜begin▁of▁sentence｜>system<｜User｜>u<｜Assistant｜>a<｜end▁of▁sentence｜>
              // (V3/R1)
  kLlama2,  // <s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] answer </s>
};

const char* chat_family_name(ChatFamily family);
// Recognises a family from marker strings in a template (or any text); nullopt when unknown.
std::optional<ChatFamily> detect_chat_family(std::string_view text);

class ChatTemplate {
 public:
  // `source` empty: the template is absent and `fallback` is used. See the header comment.
  static ChatTemplate from_source(std::string_view source, std::string bos_token,
                                  std::string eos_token, ChatFamily fallback = ChatFamily::kChatML);
  static ChatTemplate builtin(ChatFamily family, std::string bos_token = "",
                              std::string eos_token = "");
  // `source` may be empty; BOS/EOS texts and the fallback family come from the tokenizer.
  static ChatTemplate for_model(std::string_view source, const Tokenizer& tokenizer);

  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;
  ~ChatTemplate();

  std::string render(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  // Messages as JSON (objects with role, content and e.g. tool_calls); `extra` is an object of
  // further template variables (tools, enable_thinking ...) or null. Built-in formats read only
  // role and content.
  std::string render_json(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                          const nlohmann::ordered_json* extra = nullptr) const;

  bool uses_jinja() const { return jinja_ != nullptr; }
  ChatFamily family() const { return family_; }  // the built-in format when !uses_jinja()
  const std::string& fallback_reason() const { return fallback_reason_; }

 private:
  ChatTemplate() = default;
  std::string render_builtin(std::span<const ChatMessage> messages,
                             bool add_generation_prompt) const;

  std::unique_ptr<jinja::Template> jinja_;
  ChatFamily family_ = ChatFamily::kChatML;
  std::string bos_token_;
  std::string eos_token_;
  std::string fallback_reason_;
};

}  // namespace herd::model
