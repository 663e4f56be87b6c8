// The NEON attention loops (kernels/attention_neon.h) one by one against the scalar loops:
// odd head sizes (tails), every head count, blocked K at unaligned position ranges. On other
// CPUs there is nothing to compare and the tests skip.
#include "kernels/attention_neon.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/attention.h"
#include "tensor/fp16.h"
#include "util/cpu_features.h"

namespace herd::kernels {
namespace {

#if defined(__aarch64__)

std::vector<float> uniform(std::size_t n, unsigned seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<std::uint16_t> to_half(const std::vector<float>& x) {
  std::vector<std::uint16_t> h(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) h[i] = tensor::fp32_to_fp16(x[i]);
  return h;
}

const AttentionLoops& scalar() {
  return attention_loops(Isa::kScalar);
}

TEST(AttentionNeon, ScoresAndAccumulateMatchScalar) {
  const AttentionLoops& neon = neon::attention_loops();
  for (int d : {3, 64, 66, 128}) {
    for (int n_q = 1; n_q <= kAttentionMaxHeads; ++n_q) {
      const int n = 37, k_stride = d + 5, s_stride = n + 3;
      const auto q = uniform(static_cast<std::size_t>(n_q) * d, d + n_q, -1, 1);
      const auto kv = to_half(uniform(static_cast<std::size_t>(n) * k_stride, 7 * d, -1, 1));
      std::vector<float> want(static_cast<std::size_t>(n_q) * s_stride, -3.0f), got = want;
      scalar().scores(q.data(), n_q, d, kv.data(), k_stride, n, 0.125f, want.data(), s_stride);
      neon.scores(q.data(), n_q, d, kv.data(), k_stride, n, 0.125f, got.data(), s_stride);
      for (std::size_t i = 0; i < want.size(); ++i)
        ASSERT_NEAR(got[i], want[i], 1e-5f * d) << "scores d " << d << " n_q " << n_q << " " << i;

      // Weights as softmax leaves them: in [0, 1]; accumulators start nonzero.
      const auto w = uniform(static_cast<std::size_t>(n_q) * s_stride, n_q, 0, 1);
      std::vector<float> acc_want = uniform(static_cast<std::size_t>(n_q) * d + 4, d, -1, 1);
      std::vector<float> acc_got = acc_want;
      scalar().accumulate(w.data(), s_stride, n_q, kv.data(), k_stride, n, d, acc_want.data());
      neon.accumulate(w.data(), s_stride, n_q, kv.data(), k_stride, n, d, acc_got.data());
      for (std::size_t j = 0; j < acc_want.size(); ++j)
        ASSERT_NEAR(acc_got[j], acc_want[j], 1e-5f * n) << "accumulate d " << d << " " << j;
    }
  }
}

TEST(AttentionNeon, BlockedScoresMatchScalarAtUnalignedRanges) {
  const AttentionLoops& neon = neon::attention_loops();
  const int d = 40, positions = 5 * kKeyBlock;
  const auto k = to_half(uniform(static_cast<std::size_t>(positions) * d, 3, -1, 1));
  for (int n_q : {1, 3, 8}) {
    const auto q = uniform(static_cast<std::size_t>(n_q) * d, n_q, -1, 1);
    for (auto [p0, n] : {std::pair{0, 80}, std::pair{5, 1}, std::pair{7, 30}, std::pair{17, 63}}) {
      const int s_stride = n + 2;
      std::vector<float> want(static_cast<std::size_t>(n_q) * s_stride, -3.0f), got = want;
      scalar().scores_blocked(q.data(), n_q, d, k.data(), p0, n, 0.5f, want.data(), s_stride);
      neon.scores_blocked(q.data(), n_q, d, k.data(), p0, n, 0.5f, got.data(), s_stride);
      for (std::size_t i = 0; i < want.size(); ++i)
        ASSERT_NEAR(got[i], want[i], 1e-4f) << "n_q " << n_q << " p0 " << p0 << " i " << i;
    }
  }
}

TEST(AttentionNeon, MaxAndExpSumMatchScalar) {
  const AttentionLoops& neon = neon::attention_loops();
  for (int n : {1, 4, 7, 64, 255}) {
    const auto x = uniform(static_cast<std::size_t>(n), n, -30, 5);
    EXPECT_EQ(neon.max(x.data(), n), scalar().max(x.data(), n)) << n;
    const float m = scalar().max(x.data(), n);
    std::vector<float> want(x.begin(), x.end()), got = want;
    want.push_back(-9.0f);
    got.push_back(-9.0f);  // past the row: untouched
    const float sum_want = scalar().exp_sum(want.data(), n, m);
    const float sum_got = neon.exp_sum(got.data(), n, m);
    EXPECT_NEAR(sum_got, sum_want, 2e-6f * sum_want) << n;
    for (int i = 0; i < n; ++i) ASSERT_NEAR(got[i], want[i], 2e-6f * want[i] + 1e-37f) << i;
    EXPECT_EQ(got[n], -9.0f);
  }
}

TEST(AttentionNeon, ToF16RoundsLikeTheScalarReference) {
  auto x = uniform(41, 5, -70000, 70000);
  const float specials[] = {1.0f + 1.0f / 2048.0f,
                            1.0f + 3.0f / 2048.0f,
                            65504.0f,
                            65520.0f,
                            -1e-6f,
                            3e-8f,
                            -0.0f,
                            std::numeric_limits<float>::infinity(),
                            6e-5f};
  std::copy(std::begin(specials), std::end(specials), x.begin());
  std::vector<std::uint16_t> got(x.size() + 1, 0xABCD);
  neon::attention_loops().to_f16(x.data(), got.data(), static_cast<std::int64_t>(x.size()));
  for (std::size_t i = 0; i < x.size(); ++i)
    ASSERT_EQ(got[i], tensor::fp32_to_fp16(x[i])) << i << " " << x[i];
  EXPECT_EQ(got[x.size()], 0xABCD);
}

#else

TEST(AttentionNeon, ScoresAndAccumulateMatchScalar) {
  GTEST_SKIP() << "the NEON loops exist only on AArch64";
}

#endif

}  // namespace
}  // namespace herd::kernels
