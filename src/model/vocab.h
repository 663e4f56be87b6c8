// A tokenizer's vocabulary: token texts, scores and types, merges, special ids and flags,
// loaded from GGUF metadata (tokenizer.ggml.*) or a Hugging Face tokenizer.json.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace herd::gguf {
class Metadata;
}

namespace herd::model {

// GGUF tokenizer.ggml.token_type values (llama.cpp llama_token_type).
enum class TokenType : std::uint8_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

enum class VocabKind {
  kSentencePiece,  // tokenizer.ggml.model "llama": score-driven merges, ▁ for space, <0xXX> bytes
  kBytePairs,      // tokenizer.ggml.model "gpt2": ranked merges over GPT-2's byte-level alphabet
};

// Lookup by string_view without building a std::string.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenIndex = std::unordered_map<std::string, std::int32_t, StringHash, std::equal_to<>>;

struct Vocab {
  VocabKind kind = VocabKind::kSentencePiece;
  std::vector<std::string> tokens;  // [n_vocab] stored text (byte-level for BPE, ▁ for SPM)
  std::vector<float> scores;        // [n_vocab] SPM merge priority; 0 when absent
  std::vector<TokenType> types;     // [n_vocab]
  TokenIndex index;                 // text -> id
  // BPE merge ranks keyed by merge_key(left id, right id); lower merges first.
  std::unordered_map<std::uint64_t, std::int32_t> merge_ranks;
  std::vector<std::string> pre_patterns;  // BPE pre-tokenizer regexes, applied in order
  bool ignore_merges = false;             // BPE: a word that is a token is emitted whole (Llama 3)

  std::int32_t bos = -1, eos = -1, eot = -1, eom = -1, unknown = -1, padding = -1;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;  // SPM: a space is put before the text (and removed on decode)
  bool normalize_nfc = false;     // tokenizer.json "normalizer": NFC (Qwen2/3)
  std::vector<std::int32_t> end_of_generation;  // sorted

  std::int32_t size() const { return static_cast<std::int32_t>(tokens.size()); }
  std::int32_t find(std::string_view text) const {
    auto it = index.find(text);
    return it == index.end() ? -1 : it->second;
  }
  static std::uint64_t merge_key(std::int32_t left, std::int32_t right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
           static_cast<std::uint32_t>(right);
  }
  // Rank of merging left+right, -1 when they do not merge.
  std::int32_t merge_rank(std::int32_t left, std::int32_t right) const {
    auto it = merge_ranks.find(merge_key(left, right));
    return it == merge_ranks.end() ? -1 : it->second;
  }
};

// Builds index, merge ranks and the end-of-generation list once tokens and raw merges are set.
// Merges are "left right" pairs of token texts; pairs naming unknown tokens are skipped, as they
// can never apply. Throws herd::FormatError for ids out of range.
void finish_vocab(Vocab& vocab, const std::vector<std::pair<std::string, std::string>>& merges);
// The special-id part of finish_vocab: drops ids out of range, finds EOT, lists end-of-generation
// tokens. Call again after changing bos/eos/eot.
void finish_special_tokens(Vocab& vocab);

Vocab load_gguf_vocab(const gguf::Metadata& metadata);
Vocab load_tokenizer_json_vocab(const std::string& path);

}  // namespace herd::model
