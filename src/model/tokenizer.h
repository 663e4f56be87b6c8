// Text <-> token ids, from a model's GGUF metadata (tokenizer.ggml.*) or a Hugging Face
// tokenizer.json. SentencePiece ("llama") and byte-level BPE ("gpt2") with the pre-tokenizers
// of Llama 3, Qwen2/3, DeepSeek, GPT-2 and others.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace herd::gguf {
class Metadata;
}

namespace herd::model {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Builds from GGUF metadata (tokenizer.ggml.model, .tokens, .scores, .token_type, .merges,
  // .pre, special ids, add_bos/add_eos). Throws herd::FormatError when incomplete.
  static std::unique_ptr<Tokenizer> from_gguf(const gguf::Metadata& metadata);
  // Builds from a Hugging Face tokenizer.json (BPE models), e.g. Llama 3 or Qwen3.
  static std::unique_ptr<Tokenizer> from_tokenizer_json(const std::string& path);
  // A .json path goes to from_tokenizer_json, anything else is opened as a GGUF file.
  static std::unique_ptr<Tokenizer> from_file(const std::string& path);

  // add_special: prepend BOS (and append EOS) as the vocabulary asks.
  // parse_special: text like "<|im_start|>" becomes its special token instead of plain text.
  virtual std::vector<std::int32_t> encode(std::string_view text, bool add_special,
                                           bool parse_special) const = 0;
  // The bytes a token stands for (byte-fallback tokens give their byte; may be partial UTF-8).
  virtual std::string token_to_piece(std::int32_t id) const = 0;
  // Concatenated pieces; SentencePiece's leading space after BOS is removed as llama.cpp does.
  // Control tokens (BOS, EOS, <|im_end|> ...) are left out; token_to_piece gives their text.
  virtual std::string decode(std::span<const std::int32_t> ids) const = 0;

  virtual std::int32_t n_vocab() const = 0;
  virtual std::int32_t bos() const = 0;  // -1 when none
  virtual std::int32_t eos() const = 0;  // -1 when none
  // End of generation: EOS, EOT, <|im_end|>, <|eot_id|> and the like.
  virtual bool is_end_of_generation(std::int32_t id) const = 0;
  virtual bool adds_bos() const = 0;
  // The text of a token as stored in the vocabulary (for debugging and templates).
  virtual const std::string& token_text(std::int32_t id) const = 0;
  // Id of a token by its exact text, -1 when absent.
  virtual std::int32_t find_token(std::string_view text) const = 0;
  // Control tokens (BOS, EOS, chat markers): not text, matched in input only with parse_special.
  virtual bool is_control(std::int32_t id) const { return false; }
};

}  // namespace herd::model
