#include "engine/generator.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "engine/utf8.h"
#include "model/tokenizer.h"
#include "util/error.h"

namespace herd::engine {
namespace {

constexpr std::int32_t kBos = 256;
constexpr std::int32_t kEos = 257;
constexpr std::int32_t kVocab = 260;

// One token per byte (ids 0..255), plus <s> and </s>.
class ByteTokenizer : public model::Tokenizer {
 public:
  std::vector<std::int32_t> encode(std::string_view text, bool add_special,
                                   bool parse_special) const override {
    std::vector<std::int32_t> ids;
    if (add_special) ids.push_back(kBos);
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (parse_special && text.substr(i, 3) == "<s>") {
        ids.push_back(kBos);
        i += 2;
      } else {
        ids.push_back(static_cast<unsigned char>(text[i]));
      }
    }
    return ids;
  }
  std::string token_to_piece(std::int32_t id) const override {
    return id < 256 ? std::string(1, static_cast<char>(id))
                    : texts_[static_cast<std::size_t>(id - 256)];
  }
  std::string decode(std::span<const std::int32_t> ids) const override {
    std::string s;
    for (std::int32_t id : ids) s += token_to_piece(id);
    return s;
  }
  std::int32_t n_vocab() const override { return kVocab; }
  std::int32_t bos() const override { return kBos; }
  std::int32_t eos() const override { return kEos; }
  bool is_end_of_generation(std::int32_t id) const override { return id == kEos; }
  bool adds_bos() const override { return true; }
  const std::string& token_text(std::int32_t id) const override { return texts_[0]; }
  std::int32_t find_token(std::string_view text) const override { return -1; }

 private:
  std::vector<std::string> texts_ = {"<s>", "</s>", "", ""};
};

// A deterministic "model": the next token is whatever `next` says for the cached tokens.
// It checks that positions arrive in order, as a real KV cache would.
class FakePipeline : public Pipeline {
 public:
  using Script = std::function<std::int32_t(const std::vector<std::int32_t>& cache)>;
  FakePipeline(std::int32_t n_ctx, Script next) : n_ctx_(n_ctx), next_(std::move(next)) {}

  void forward(std::span<const std::int32_t> tokens, std::int32_t pos0, bool all_logits,
               std::vector<float>& logits) override {
    if (fail_next) fail("node lost");
    if (pos0 != static_cast<std::int32_t>(cache.size())) fail("position {} out of order", pos0);
    cache.insert(cache.end(), tokens.begin(), tokens.end());
    if (static_cast<std::int32_t>(cache.size()) > n_ctx_) fail("context full");
    forwards.emplace_back(pos0, static_cast<std::int32_t>(tokens.size()));
    logits.assign(kVocab, 0.0f);
    logits[static_cast<std::size_t>(next_(cache))] = 10.0f;
  }
  void truncate(std::int32_t n_keep) override {
    truncates.push_back(n_keep);
    if (static_cast<std::size_t>(n_keep) < cache.size())
      cache.resize(static_cast<std::size_t>(n_keep));
  }
  std::int32_t n_ctx() const override { return n_ctx_; }
  std::int32_t n_vocab() const override { return kVocab; }

  void set_script(Script next) { next_ = std::move(next); }

  std::vector<std::int32_t> cache;
  std::vector<std::pair<std::int32_t, std::int32_t>> forwards;  // (pos0, n tokens)
  std::vector<std::int32_t> truncates;
  bool fail_next = false;

 private:
  std::int32_t n_ctx_;
  Script next_;
};

// After `prompt_len` tokens, says `reply` byte by byte and then </s> (or keeps repeating 'z').
FakePipeline::Script reply(std::size_t prompt_len, std::string text, bool end = true) {
  return [=](const std::vector<std::int32_t>& cache) -> std::int32_t {
    std::size_t i = cache.size() - prompt_len;
    if (i < text.size()) return static_cast<unsigned char>(text[i]);
    return end ? kEos : 'z';
  };
}

GenerationParams greedy(int max_tokens = 32) {
  GenerationParams p;
  p.max_tokens = max_tokens;
  p.sampling.temperature = 0.0f;
  return p;
}

struct Recorder {
  std::vector<std::string> pieces;
  TextCallback callback() {
    return [this](std::string_view piece) {
      pieces.emplace_back(piece);
      return true;
    };
  }
};

TEST(GeneratorTest, PrefillsOnceThenDecodesUntilEndOfGeneration) {
  ByteTokenizer tok;
  FakePipeline pipe(64, reply(4, "Hello"));
  Generator gen(tok, pipe);
  Recorder rec;
  GenerationResult r = gen.generate("abc", greedy(), rec.callback());  // <s>abc: 4 tokens
  EXPECT_EQ(r.text, "Hello");
  EXPECT_EQ(r.tokens, (std::vector<std::int32_t>{'H', 'e', 'l', 'l', 'o'}));
  EXPECT_EQ(r.stats.finish_reason, "stop");
  EXPECT_EQ(r.stats.prompt_tokens, 4);
  EXPECT_EQ(r.stats.generated_tokens, 6);  // five letters and </s>
  EXPECT_GE(r.stats.time_to_first_token_ms, 0.0);
  std::string streamed;
  for (const auto& p : rec.pieces) streamed += p;
  EXPECT_EQ(streamed, "Hello");
  // One prefill call with the whole prompt, then one call per generated token except the last.
  ASSERT_EQ(pipe.forwards.size(), 6u);
  EXPECT_EQ(pipe.forwards[0], std::make_pair(0, 4));
  for (std::size_t i = 1; i < pipe.forwards.size(); ++i) {
    EXPECT_EQ(pipe.forwards[i], std::make_pair(static_cast<std::int32_t>(3 + i), 1));
  }
}

TEST(GeneratorTest, StopsAtMaxTokensWithFinishReasonLength) {
  ByteTokenizer tok;
  FakePipeline pipe(64, reply(2, "abcdefgh"));
  Generator gen(tok, pipe);
  GenerationResult r = gen.generate("x", greedy(3));
  EXPECT_EQ(r.text, "abc");
  EXPECT_EQ(r.stats.finish_reason, "length");
  EXPECT_EQ(r.stats.generated_tokens, 3);
}

TEST(GeneratorTest, StopStringEndsGenerationAndIsNeverEmitted) {
  ByteTokenizer tok;
  FakePipeline pipe(64, reply(2, "Hi there\nUser: more", false));
  Generator gen(tok, pipe);
  Recorder rec;
  GenerationParams p = greedy();
  p.stop = {"\nUser:", "zzz"};
  GenerationResult r = gen.generate("x", p, rec.callback());
  EXPECT_EQ(r.text, "Hi there");
  EXPECT_EQ(r.stats.finish_reason, "stop");
  for (const auto& piece : rec.pieces) EXPECT_EQ(piece.find('\n'), std::string::npos);
}

TEST(GeneratorTest, PossibleStopPrefixIsHeldBackUntilResolved) {
  ByteTokenizer tok;
  FakePipeline pipe(64, reply(2, "a ST b"));
  Generator gen(tok, pipe);
  Recorder rec;
  GenerationParams p = greedy();
  p.stop = {"STX"};
  GenerationResult r = gen.generate("x", p, rec.callback());
  EXPECT_EQ(r.text, "a ST b");
  EXPECT_EQ(rec.pieces, (std::vector<std::string>{"a", " ", "ST ", "b"}));
}

TEST(GeneratorTest, HeldBackTextIsFlushedWhenGenerationEnds) {
  ByteTokenizer tok;
  FakePipeline pipe(64, reply(2, "end S"));
  Generator gen(tok, pipe);
  Recorder rec;
  GenerationParams p = greedy();
  p.stop = {"STOP"};
  GenerationResult r = gen.generate("x", p, rec.callback());
  EXPECT_EQ(r.text, "end S");
  EXPECT_EQ(rec.pieces.back(), "S");
}

TEST(GeneratorTest, StreamsWholeUtf8CharactersOnly) {
  ByteTokenizer tok;
  FakePipeline pipe(64, reply(2, "h\xC3\xA9 \xF0\x9F\x98\x80!"));  // "hé 😀!" one byte per token
  Generator gen(tok, pipe);
  Recorder rec;
  GenerationResult r = gen.generate("x", greedy(), rec.callback());
  EXPECT_EQ(rec.pieces, (std::vector<std::string>{"h", "\xC3\xA9", " ", "\xF0\x9F\x98\x80", "!"}));
  EXPECT_EQ(r.text, "h\xC3\xA9 \xF0\x9F\x98\x80!");
}

TEST(GeneratorTest, TruncatedUtf8AtTheEndBecomesReplacementCharacter) {
  ByteTokenizer tok;
  FakePipeline pipe(64, reply(2, "ok\xE2\x82"));  // the first two bytes of "€"
  Generator gen(tok, pipe);
  GenerationResult r = gen.generate("x", greedy());
  EXPECT_EQ(r.text, "ok\xEF\xBF\xBD");
}

TEST(GeneratorTest, PromptPlusMaxTokensBeyondContextIsAnError) {
  ByteTokenizer tok;
  FakePipeline pipe(16, reply(10, "abc"));
  Generator gen(tok, pipe);
  try {
    gen.generate("123456789", greedy(7));  // 10 prompt tokens + 7 > 16
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("context holds 16"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(pipe.forwards.empty());
  EXPECT_EQ(gen.generate("123456789", greedy(6)).text, "abc");
  EXPECT_THROW(gen.generate(std::vector<std::int32_t>{}, greedy()), InvalidArgument);
  EXPECT_THROW(gen.generate(std::vector<std::int32_t>{kVocab}, greedy()), InvalidArgument);
}

TEST(GeneratorTest, NegativeMaxTokensRunsUntilTheContextIsFull) {
  ByteTokenizer tok;
  FakePipeline pipe(16, reply(10, "", false));
  Generator gen(tok, pipe);
  GenerationResult r = gen.generate("123456789", greedy(-1));
  EXPECT_EQ(r.text, "zzzzzz");
  EXPECT_EQ(r.stats.finish_reason, "length");
}

TEST(GeneratorTest, ReusesTheCachedPrefixOfThePreviousRequest) {
  ByteTokenizer tok;
  FakePipeline pipe(64, reply(7, "xy"));
  Generator gen(tok, pipe);
  EXPECT_EQ(gen.generate("abcdef", greedy()).text, "xy");
  // Cached: <s>abcdef x y (the final </s> was sampled, never run).
  EXPECT_EQ(gen.cached_tokens().size(), 9u);
  EXPECT_EQ(pipe.cache, gen.cached_tokens());

  pipe.set_script(reply(11, "!"));
  pipe.forwards.clear();
  GenerationResult r = gen.generate("abcdefxygh", greedy());
  EXPECT_EQ(r.stats.cached_prompt_tokens, 9);
  ASSERT_FALSE(pipe.forwards.empty());
  EXPECT_EQ(pipe.forwards[0], std::make_pair(9, 2));

  // A prompt that diverges early keeps only the shared part.
  pipe.set_script(reply(5, "!"));
  pipe.forwards.clear();
  r = gen.generate("abXd", greedy());
  EXPECT_EQ(r.stats.cached_prompt_tokens, 3);
  EXPECT_EQ(pipe.truncates.back(), 3);
  EXPECT_EQ(pipe.forwards[0], std::make_pair(3, 2));

  // The same prompt again still runs its last token to get logits.
  pipe.forwards.clear();
  r = gen.generate("abXd", greedy());
  EXPECT_EQ(r.stats.cached_prompt_tokens, 4);
  EXPECT_EQ(pipe.forwards[0], std::make_pair(4, 1));
  EXPECT_EQ(r.text, "!");
}

TEST(GeneratorTest, PipelineFailureForgetsTheCache) {
  ByteTokenizer tok;
  FakePipeline pipe(64, reply(3, "ab"));
  Generator gen(tok, pipe);
  gen.generate("xy", greedy());
  pipe.fail_next = true;
  EXPECT_THROW(gen.generate("xy", greedy()), Error);
  pipe.fail_next = false;
  EXPECT_TRUE(gen.cached_tokens().empty());
  pipe.truncates.clear();
  EXPECT_EQ(gen.generate("xy", greedy()).text, "ab");
  EXPECT_EQ(pipe.truncates, (std::vector<std::int32_t>{0}));
}

TEST(GeneratorTest, CallbackReturningFalseCancels) {
  ByteTokenizer tok;
  FakePipeline pipe(64, reply(2, "abcdef"));
  Generator gen(tok, pipe);
  int calls = 0;
  GenerationResult r = gen.generate("x", greedy(), [&](std::string_view) { return ++calls < 2; });
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(r.text, "ab");
  EXPECT_EQ(r.stats.finish_reason, "cancelled");
}

TEST(GeneratorTest, TemplateBosIsNotDoubled) {
  ByteTokenizer tok;
  FakePipeline pipe(64, reply(3, "k"));
  Generator gen(tok, pipe);
  GenerationResult r = gen.generate("<s>hi", greedy());
  EXPECT_EQ(r.stats.prompt_tokens, 3);
  EXPECT_EQ(pipe.cache.front(), kBos);
  EXPECT_EQ(pipe.cache[1], 'h');
}

TEST(GeneratorTest, SameSeedSamplesTheSameText) {
  ByteTokenizer tok;
  auto flat = [](const std::vector<std::int32_t>& cache) {
    return 'a' + static_cast<int>(cache.size() % 3);
  };
  GenerationParams p;
  p.max_tokens = 8;
  p.sampling.temperature = 50.0f;  // nearly uniform among the top-k 40
  p.sampling.min_p = 0.0f;
  p.sampling.seed = 1234;
  FakePipeline a(64, flat), b(64, flat);
  Generator ga(tok, a), gb(tok, b);
  EXPECT_EQ(ga.generate("x", p).tokens, gb.generate("x", p).tokens);
}

TEST(Utf8Test, CompletePrefixStopsBeforeAnUnfinishedCharacter) {
  EXPECT_EQ(utf8_complete_prefix("abc"), 3u);
  EXPECT_EQ(utf8_complete_prefix("a\xC3"), 1u);
  EXPECT_EQ(utf8_complete_prefix("a\xF0\x9F\x98"), 1u);
  EXPECT_EQ(utf8_complete_prefix("a\xF0\x9F\x98\x80"), 5u);
  EXPECT_EQ(utf8_complete_prefix("\x80\x80"), 2u);  // stray continuation bytes pass through
  EXPECT_EQ(utf8_sanitize("a\xFF"
                          "b"),
            "a\xEF\xBF\xBD"
            "b");
}

}  // namespace
}  // namespace herd::engine
