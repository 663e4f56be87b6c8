// Splits text into the words that byte-level BPE encodes one at a time. The regexes are those
// of the models' Hugging Face tokenizer.json files (as collected in llama.cpp's llama-vocab.cpp
// per tokenizer.ggml.pre), run by ICU so that \p{..} classes and lookahead work as written.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace herd::model {

class PreTokenizer {
 public:
  // Each pattern splits every piece the previous one produced; matches and the text between
  // them both become pieces (Hugging Face Split with behavior "Isolated"). Throws
  // herd::FormatError naming a pattern ICU cannot compile.
  explicit PreTokenizer(std::vector<std::string> patterns);

  // Patterns for a GGUF tokenizer.ggml.pre name ("llama-bpe", "qwen2", "deepseek-llm", ...).
  // An empty name or "default" gives GPT-2's. Throws herd::FormatError for unknown names.
  static std::vector<std::string> patterns_for(std::string_view pre_name);
  // Whether that pre-tokenizer's vocabulary skips merges for words already in the vocabulary
  // (tokenizer.json "ignore_merges", set by Llama 3).
  static bool ignores_merges(std::string_view pre_name);

  // GPT-2's regex (also what ByteLevel's use_regex adds).
  static const char* gpt2_pattern();

  // Pieces of `text`, in order, covering it exactly; views into `text`.
  std::vector<std::string_view> split(std::string_view text) const;

  const std::vector<std::string>& patterns() const { return sources_; }

 private:
  struct Compiled;  // the ICU patterns, kept out of this header
  std::vector<std::string> sources_;
  std::shared_ptr<const Compiled> compiled_;
};

}  // namespace herd::model
