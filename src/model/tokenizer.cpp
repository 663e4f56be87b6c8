// Tokenizer over a Vocab: special tokens are split out first (llama.cpp
// tokenizer_st_partition), then each stretch of plain text goes through SentencePiece or
// pre-tokenizer + byte-level BPE.
#include "model/tokenizer.h"

#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include <algorithm>

#include "gguf/reader.h"
#include "model/pretokenizer.h"
#include "model/tokenizer_algorithms.h"
#include "model/unicode.h"
#include "model/vocab.h"
#include "util/error.h"

namespace herd::model {
namespace {

// A stretch of input: plain text [offset, offset+length) or an already-known token.
struct Fragment {
  std::int32_t token;  // -1 for text
  std::size_t offset;
  std::size_t length;
};

// NFC of valid UTF-8; malformed text is left alone rather than have its bytes replaced.
std::string nfc(std::string_view text) {
  if (!is_valid_utf8(text)) return std::string(text);
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* n = icu::Normalizer2::getNFCInstance(status);
  if (U_FAILURE(status)) return std::string(text);
  const icu::UnicodeString u = icu::UnicodeString::fromUTF8(
      icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  if (n->isNormalized(u, status) || U_FAILURE(status)) return std::string(text);
  std::string out;
  n->normalize(u, status).toUTF8String(out);
  return U_SUCCESS(status) ? out : std::string(text);
}

class VocabTokenizer final : public Tokenizer {
 public:
  explicit VocabTokenizer(Vocab vocab) : vocab_(std::move(vocab)), pre_(vocab_.pre_patterns) {
    for (std::int32_t id = 0; id < vocab_.size(); ++id) {
      const TokenType t = vocab_.types[id];
      if ((t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) &&
          !vocab_.tokens[id].empty()) {
        specials_.push_back(id);
      }
    }
    // Longest first, so that "<|im_start|>" is not cut by a shorter token inside it.
    std::stable_sort(specials_.begin(), specials_.end(), [&](std::int32_t a, std::int32_t b) {
      return vocab_.tokens[a].size() > vocab_.tokens[b].size();
    });
  }

  std::vector<std::int32_t> encode(std::string_view text, bool add_special,
                                   bool parse_special) const override {
    std::vector<std::int32_t> out;
    if (add_special && vocab_.add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
    if (!text.empty()) {
      const std::vector<Fragment> fragments = partition(text, parse_special);
      if (vocab_.kind == VocabKind::kSentencePiece) {
        encode_spm(text, fragments, out);
      } else {
        encode_bpe(text, fragments, out);
      }
    }
    if (add_special && vocab_.add_eos && vocab_.eos >= 0) out.push_back(vocab_.eos);
    return out;
  }

  std::string token_to_piece(std::int32_t id) const override { return piece(id, true); }

  std::string decode(std::span<const std::int32_t> ids) const override {
    std::string out;
    bool first_text = true;
    for (std::int32_t id : ids) {
      std::string p = piece(id, false);
      if (p.empty()) continue;
      // Undo the space SentencePiece put in front of the text.
      if (first_text && vocab_.add_space_prefix && p[0] == ' ') p.erase(0, 1);
      first_text = false;
      out += p;
    }
    return out;
  }

  std::int32_t n_vocab() const override { return vocab_.size(); }
  std::int32_t bos() const override { return vocab_.bos; }
  std::int32_t eos() const override { return vocab_.eos; }
  bool is_end_of_generation(std::int32_t id) const override {
    return std::binary_search(vocab_.end_of_generation.begin(), vocab_.end_of_generation.end(), id);
  }
  bool adds_bos() const override { return vocab_.add_bos && vocab_.bos >= 0; }
  const std::string& token_text(std::int32_t id) const override {
    check_id(id);
    return vocab_.tokens[id];
  }
  std::int32_t find_token(std::string_view text) const override { return vocab_.find(text); }
  bool is_control(std::int32_t id) const override {
    return id >= 0 && id < vocab_.size() && vocab_.types[id] == TokenType::kControl;
  }

 private:
  void check_id(std::int32_t id) const {
    if (id < 0 || id >= vocab_.size()) {
      fail_argument("token id {} is outside the vocabulary (0..{})", id, vocab_.size() - 1);
    }
  }

  std::string piece(std::int32_t id, bool render_control) const {
    check_id(id);
    return vocab_.kind == VocabKind::kSentencePiece ? spm_piece(vocab_, id, render_control)
                                                    : bpe_piece(vocab_, id, render_control);
  }

  // Splits special-token occurrences out of the text. Control and unknown tokens are only
  // recognised with parse_special; user-defined ones always (llama.cpp does the same).
  std::vector<Fragment> partition(std::string_view text, bool parse_special) const {
    std::vector<Fragment> fragments{{-1, 0, text.size()}};
    std::vector<Fragment> next;
    for (std::int32_t id : specials_) {
      if (!parse_special && vocab_.types[id] != TokenType::kUserDefined) continue;
      const std::string& special = vocab_.tokens[id];
      next.clear();
      for (const Fragment& f : fragments) {
        if (f.token >= 0 || f.length < special.size()) {
          next.push_back(f);
          continue;
        }
        std::size_t pos = f.offset;
        const std::size_t end = f.offset + f.length;
        while (pos < end) {
          const std::size_t hit = text.substr(0, end).find(special, pos);
          if (hit == std::string_view::npos) break;
          if (hit > pos) next.push_back({-1, pos, hit - pos});
          next.push_back({id, hit, special.size()});
          pos = hit + special.size();
        }
        if (pos < end) next.push_back({-1, pos, end - pos});
      }
      fragments.swap(next);
    }
    return fragments;
  }

  void encode_spm(std::string_view text, const std::vector<Fragment>& fragments,
                  std::vector<std::int32_t>& out) const {
    static constexpr std::string_view kSpace = "\xE2\x96\x81";  // ▁
    bool after_special = true;  // the text start counts as following a special token
    std::string escaped;
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        out.push_back(f.token);
        after_special = true;
        continue;
      }
      escaped.clear();
      if (vocab_.add_space_prefix && after_special) escaped += kSpace;
      for (char c : text.substr(f.offset, f.length)) {
        if (c == ' ') {
          escaped += kSpace;
        } else {
          escaped += c;
        }
      }
      spm_encode(vocab_, escaped, out);
      after_special = false;
    }
  }

  void encode_bpe(std::string_view text, const std::vector<Fragment>& fragments,
                  std::vector<std::int32_t>& out) const {
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        out.push_back(f.token);
        continue;
      }
      std::string_view raw = text.substr(f.offset, f.length);
      std::string normalized;
      if (vocab_.normalize_nfc) {
        normalized = nfc(raw);
        raw = normalized;
      }
      for (std::string_view word : pre_.split(raw)) {
        bpe_encode_word(vocab_, byte_level_encode(word), out);
      }
    }
  }

  Vocab vocab_;
  PreTokenizer pre_;
  std::vector<std::int32_t> specials_;  // ids matched in text, longest text first
};

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const gguf::Metadata& metadata) {
  return std::make_unique<VocabTokenizer>(load_gguf_vocab(metadata));
}

std::unique_ptr<Tokenizer> Tokenizer::from_tokenizer_json(const std::string& path) {
  return std::make_unique<VocabTokenizer>(load_tokenizer_json_vocab(path));
}

std::unique_ptr<Tokenizer> Tokenizer::from_file(const std::string& path) {
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
    return from_tokenizer_json(path);
  }
  return from_gguf(gguf::File::open(path).metadata());
}

}  // namespace herd::model
