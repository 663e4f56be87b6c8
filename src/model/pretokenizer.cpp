#include "model/pretokenizer.h"

#include <unicode/regex.h>
#include <unicode/utext.h>

#include <array>

#include "util/error.h"

namespace herd::model {
namespace {

// The regexes below are the ones in each model family's tokenizer.json; where llama.cpp
// (llama-vocab.cpp) adapted them, the adaptation is noted.
constexpr const char* kGpt2 =
    R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)re";
// Llama 3: "(?i:'s|...)" spelled out as character classes, as llama.cpp does.
constexpr const char* kLlama3 =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
// Qwen2 and StableLM 2: as Llama 3 but single digits.
constexpr const char* kQwen2 =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
// DeepSeek LLM's letter class (the cased letters), written as escapes: several of its code
// points change under Unicode normalization, which an editor may apply to literal characters.
constexpr const char* kDeepseekLlmLetters =
    "\\s?["
    "A-Za-z\\x{b5}\\x{c0}-\\x{d6}\\x{d8}-\\x{f6}\\x{f8}-\\x{1ba}\\x{1bc}-\\x{1bf}\\x{1c4}-"
    "\\x{293}\\x{295}-\\x{2af}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37b}-\\x{37d}\\x{37f}"
    "\\x{386}\\x{388}-\\x{38a}\\x{38c}\\x{38e}-\\x{3a1}\\x{3a3}-\\x{3f5}\\x{3f7}-\\x{481}"
    "\\x{48a}-\\x{52f}\\x{531}-\\x{556}\\x{10a0}-\\x{10c5}\\x{13a0}-\\x{13f5}\\x{13f8}-"
    "\\x{13fd}\\x{1c90}-\\x{1cba}\\x{1cbd}-\\x{1cbf}\\x{1d00}-\\x{1d2b}\\x{1d6b}-\\x{1d77}"
    "\\x{1d79}-\\x{1d9a}\\x{1e00}-\\x{1f15}\\x{1f18}-\\x{1f1d}\\x{1f20}-\\x{1f45}\\x{1f48}-"
    "\\x{1f4d}\\x{1f50}-\\x{1f57}\\x{1f59}\\x{1f5b}\\x{1f5d}\\x{1f5f}-\\x{1f7d}\\x{1f80}-"
    "\\x{1fb4}\\x{1fb6}-\\x{1fbc}\\x{1fbe}\\x{1fc2}-\\x{1fc4}\\x{1fc6}-\\x{1fcc}\\x{1fd0}-"
    "\\x{1fd3}\\x{1fd6}-\\x{1fdb}\\x{1fe0}-\\x{1fec}\\x{1ff2}-\\x{1ff4}\\x{1ff6}-\\x{1ffc}"
    "\\x{2102}\\x{2107}\\x{210a}-\\x{2113}\\x{2115}\\x{2119}-\\x{211d}\\x{2124}\\x{2126}"
    "\\x{2128}\\x{212a}-\\x{212d}\\x{212f}-\\x{2134}\\x{2139}\\x{213c}-\\x{213f}\\x{2145}-"
    "\\x{2149}\\x{214e}\\x{2183}\\x{2184}\\x{2c00}-\\x{2c7b}\\x{2c7e}-\\x{2ce4}\\x{2ceb}-"
    "\\x{2cee}\\x{2cf2}\\x{2cf3}\\x{a640}-\\x{a66d}\\x{a680}-\\x{a69b}\\x{a722}-\\x{a76f}"
    "\\x{a771}-\\x{a787}\\x{a78b}-\\x{a78e}\\x{ab70}-\\x{abbf}\\x{fb00}-\\x{fb06}\\x{fb13}-"
    "\\x{fb17}\\x{ff21}-\\x{ff3a}\\x{ff41}-\\x{ff5a}\\x{10400}-\\x{1044f}\\x{104b0}-"
    "\\x{104d3}\\x{104d8}-\\x{104fb}\\x{10c80}-\\x{10cb2}\\x{10cc0}-\\x{10cf2}\\x{118a0}-"
    "\\x{118df}\\x{1e900}-\\x{1e943}"
    "]+";

struct Family {
  std::array<const char*, 8> names;
  std::vector<std::string> patterns;
  bool ignore_merges = false;
};

const std::vector<Family>& families() {
  static const std::vector<Family> table = {
      {{"default", "gpt-2", "mpt", "olmo", "jais", "phi-2", "roberta-bpe", "gpt-neox"}, {kGpt2}},
      {{"jina-es", "jina-de", "jina-v1-en", "jina-v2-es", "jina-v2-de", "jina-v2-code", "gigachat"},
       {kGpt2}},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "dbrx", "smaug-bpe", "chatglm-bpe"},
       {kLlama3},
       true},
      {{"qwen2", "deepseek-r1-qwen", "megrez", "stablelm2"}, {kQwen2}},
      {{"deepseek-llm"},
       {"[\\r\\n]", kDeepseekLlmLetters, "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$",
        "[一-龥ࠀ-一가-퟿]+", "\\p{N}+"}},
      {{"deepseek-coder"},
       {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"}},
      {{"deepseek-v3"},
       {"\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
        R"re([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"}},
      {{"falcon"}, {R"re([\p{P}\$\+<=>\^~\|`]+)re", kGpt2, "[0-9][0-9][0-9]"}},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
       {"\\p{N}", kGpt2}},
      {{"poro-chat", "bloom", "gpt3-finnish"}, {R"re( ?[^(\s|.,!?…。，、।۔،)]+)re"}},
      {{"viking"}, {R"re( ?[^(\s|.,!?…。，、।۔،)]+)re", "\\p{N}"}},
      {{"tekken"},
       {R"re([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"},
       true},
      {{"gpt-4o"},
       {R"re([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re"}},
      {{"chameleon"},
       {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
        "[\\p{P}!-/:-@\\[-`{-~]", kGpt2}},
  };
  return table;
}

const Family* find_family(std::string_view name) {
  if (name.empty()) name = "default";
  for (const Family& f : families()) {
    for (const char* n : f.names) {
      if (n != nullptr && name == n) return &f;
    }
  }
  return nullptr;
}

struct UTextCloser {
  void operator()(UText* t) const { utext_close(t); }
};

}  // namespace

struct PreTokenizer::Compiled {
  std::vector<std::unique_ptr<icu::RegexPattern>> patterns;
};

PreTokenizer::PreTokenizer(std::vector<std::string> patterns) : sources_(std::move(patterns)) {
  auto compiled = std::make_shared<Compiled>();
  for (const std::string& source : sources_) {
    UErrorCode status = U_ZERO_ERROR;
    UParseError where{};
    std::unique_ptr<icu::RegexPattern> p(
        icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(source), 0, where, status));
    if (U_FAILURE(status) || !p) {
      fail_format(
          "pre-tokenizer regex '{}' does not compile ({} at offset {}); the tokenizer "
          "uses a regex feature that ICU does not support",
          source, u_errorName(status), where.offset);
    }
    compiled->patterns.push_back(std::move(p));
  }
  compiled_ = std::move(compiled);
}

std::vector<std::string> PreTokenizer::patterns_for(std::string_view pre_name) {
  const Family* f = find_family(pre_name);
  if (f == nullptr) {
    fail_format(
        "unknown pre-tokenizer '{}' (tokenizer.ggml.pre); supported: llama-bpe, qwen2, "
        "deepseek-llm, deepseek-coder, deepseek-v3, gpt-2, falcon, starcoder, refact, mpt, "
        "and others of llama.cpp's list. Convert the model with a known pre-tokenizer.",
        pre_name);
  }
  return f->patterns;
}

bool PreTokenizer::ignores_merges(std::string_view pre_name) {
  const Family* f = find_family(pre_name);
  return f != nullptr && f->ignore_merges;
}

const char* PreTokenizer::gpt2_pattern() {
  return kGpt2;
}

std::vector<std::string_view> PreTokenizer::split(std::string_view text) const {
  std::vector<std::string_view> pieces;
  if (text.empty()) return pieces;
  pieces.push_back(text);
  std::vector<std::string_view> next;
  for (const auto& pattern : compiled_->patterns) {
    next.clear();
    UErrorCode status = U_ZERO_ERROR;
    std::unique_ptr<icu::RegexMatcher> matcher(pattern->matcher(status));
    HERD_CHECK(U_SUCCESS(status));
    for (std::string_view piece : pieces) {
      // Each piece is matched on its own, as Hugging Face does: lookahead and `$` stop at its end.
      status = U_ZERO_ERROR;
      std::unique_ptr<UText, UTextCloser> utext(
          utext_openUTF8(nullptr, piece.data(), static_cast<int64_t>(piece.size()), &status));
      HERD_CHECK(U_SUCCESS(status));
      matcher->reset(utext.get());
      std::size_t done = 0;
      while (matcher->find(status) && U_SUCCESS(status)) {
        // Native indices of a UTF-8 UText are byte offsets into the piece.
        const auto start = static_cast<std::size_t>(matcher->start64(status));
        const auto end = static_cast<std::size_t>(matcher->end64(status));
        if (end == start) continue;
        if (start > done) next.push_back(piece.substr(done, start - done));
        next.push_back(piece.substr(start, end - start));
        done = end;
      }
      if (done < piece.size()) next.push_back(piece.substr(done));
    }
    pieces.swap(next);
  }
  return pieces;
}

}  // namespace herd::model
