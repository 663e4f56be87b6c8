#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "util/error.h"

namespace herd::engine {
namespace {

SamplingParams greedy() {
  SamplingParams p;
  p.temperature = 0.0f;
  return p;
}

// Only temperature shapes the distribution.
SamplingParams plain(float temperature, std::uint64_t seed) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = seed;
  return p;
}

std::vector<int> histogram(Sampler& s, const std::vector<float>& logits, int draws) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) ++counts[static_cast<std::size_t>(s.sample(logits))];
  return counts;
}

TEST(SamplerTest, GreedyIsArgmaxWithLowestIdOnTies) {
  Sampler s(greedy());
  EXPECT_EQ(s.sample(std::vector<float>{1.0f, 3.0f, 3.0f, 2.0f}), 1);
  EXPECT_EQ(s.sample(std::vector<float>{-5.0f, -4.0f, -4.5f}), 1);
  EXPECT_EQ(s.sample(std::vector<float>{0.0f, 0.0f}), 0);
}

TEST(SamplerTest, RepeatPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplingParams p = greedy();
  p.repeat_penalty = 1.1f;
  Sampler s(p);
  s.accept(0);
  // 2.0 / 1.1 = 1.82 < 1.9
  EXPECT_EQ(s.sample(std::vector<float>{2.0f, 1.9f}), 1);
  // -1.0 * 1.1 = -1.1 < -1.05
  EXPECT_EQ(s.sample(std::vector<float>{-1.0f, -1.05f}), 1);
  // Tokens never seen are untouched.
  EXPECT_EQ(s.sample(std::vector<float>{0.0f, 2.0f, 1.9f}), 1);
}

TEST(SamplerTest, RepeatPenaltyOnlyLooksAtTheLastNTokens) {
  SamplingParams p = greedy();
  p.repeat_penalty = 2.0f;
  p.repeat_last_n = 1;
  Sampler s(p);
  s.accept(0);
  s.accept(1);  // pushes token 0 out of the window
  EXPECT_EQ(s.sample(std::vector<float>{2.0f, 1.5f}), 0);
  s.reset_history();
  EXPECT_EQ(s.sample(std::vector<float>{1.0f, 1.5f}), 1);
}

TEST(SamplerTest, FrequencyAndPresencePenaltiesSubtractPerOccurrenceAndOnce) {
  SamplingParams p = greedy();
  p.frequency_penalty = 0.15f;
  Sampler s(p);
  s.accept(0);
  EXPECT_EQ(s.sample(std::vector<float>{1.0f, 0.8f}), 0);  // 0.85 > 0.8
  s.accept(0);
  EXPECT_EQ(s.sample(std::vector<float>{1.0f, 0.8f}), 1);  // 0.70 < 0.8
  SamplingParams q = greedy();
  q.presence_penalty = 0.3f;
  Sampler t(q);
  t.accept(0);
  EXPECT_EQ(t.sample(std::vector<float>{1.0f, 0.8f}), 1);
}

TEST(SamplerTest, SameSeedGivesSameTokensAndOtherSeedsDiffer) {
  std::vector<float> flat(100, 0.0f);
  auto run = [&](std::uint64_t seed) {
    Sampler s(plain(1.0f, seed));
    std::vector<std::int32_t> out;
    for (int i = 0; i < 50; ++i) out.push_back(s.sample(flat));
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
  Sampler s(plain(1.0f, 42));
  EXPECT_EQ(s.seed(), 42u);
  Sampler r(plain(1.0f, kRandomSeed));
  EXPECT_NE(r.seed(), kRandomSeed);
}

TEST(SamplerTest, TemperatureOneFollowsTheSoftmax) {
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  Sampler s(plain(1.0f, 7));
  std::vector<int> counts = histogram(s, logits, 20000);
  EXPECT_NEAR(counts[0] / 20000.0, 0.5, 0.02);
  EXPECT_NEAR(counts[1] / 20000.0, 0.3, 0.02);
  EXPECT_NEAR(counts[2] / 20000.0, 0.2, 0.02);
}

TEST(SamplerTest, LowTemperatureSharpensAndHighFlattens) {
  std::vector<float> logits = {1.0f, 0.0f};
  Sampler cold(plain(0.1f, 3));
  Sampler hot(plain(100.0f, 3));
  std::vector<int> c = histogram(cold, logits, 2000);
  std::vector<int> h = histogram(hot, logits, 2000);
  EXPECT_GT(c[0], 1990);  // p = 1 / (1 + e^-10)
  EXPECT_NEAR(h[0] / 2000.0, 0.5, 0.05);
}

TEST(SamplerTest, TopKKeepsOnlyTheKBest) {
  SamplingParams p = plain(1.0f, 11);
  p.top_k = 2;
  Sampler s(p);
  std::vector<int> counts = histogram(s, {0.0f, 0.1f, 0.2f, 0.3f}, 2000);
  EXPECT_EQ(counts[0], 0);
  EXPECT_EQ(counts[1], 0);
  EXPECT_GT(counts[2], 0);
  EXPECT_GT(counts[3], 0);
  p.top_k = 1;
  Sampler one(p);
  EXPECT_EQ(histogram(one, {0.0f, 0.1f, 0.2f, 0.3f}, 200)[3], 200);
}

TEST(SamplerTest, TopPKeepsTheSmallestSetReachingP) {
  SamplingParams p = plain(1.0f, 5);
  p.top_p = 0.6f;  // 0.5 alone is short of 0.6; 0.5 + 0.3 reaches it
  Sampler s(p);
  std::vector<int> counts = histogram(s, {std::log(0.5f), std::log(0.3f), std::log(0.2f)}, 4000);
  EXPECT_EQ(counts[2], 0);
  EXPECT_NEAR(counts[0] / 4000.0, 0.5 / 0.8, 0.03);
}

TEST(SamplerTest, MinPDropsTokensBelowAFractionOfTheBest) {
  SamplingParams p = plain(1.0f, 9);
  p.min_p = 0.2f;  // threshold 0.12: 0.1 goes, 0.3 stays
  Sampler s(p);
  std::vector<int> counts = histogram(s, {std::log(0.6f), std::log(0.3f), std::log(0.1f)}, 4000);
  EXPECT_EQ(counts[2], 0);
  EXPECT_GT(counts[1], 0);
}

TEST(SamplerTest, InvalidParametersAreRejected) {
  SamplingParams p;
  p.top_p = 1.5f;
  EXPECT_THROW(Sampler{p}, InvalidArgument);
  p = SamplingParams{};
  p.min_p = -0.1f;
  EXPECT_THROW(Sampler{p}, InvalidArgument);
  p = SamplingParams{};
  p.repeat_penalty = 0.0f;
  EXPECT_THROW(Sampler{p}, InvalidArgument);
  p = SamplingParams{};
  p.repeat_last_n = -2;
  EXPECT_THROW(Sampler{p}, InvalidArgument);
  Sampler ok(SamplingParams{});
  EXPECT_THROW(ok.sample(std::vector<float>{}), InvalidArgument);
}

}  // namespace
}  // namespace herd::engine
