#include "engine/generator.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "engine/fake_pipeline.h"
#include "engine/utf8.h"
#include "model/tokenizer.h"
#include "util/error.h"

namespace herd::engine {
namespace {

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
