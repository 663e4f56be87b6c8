// Norm, rope, softmax and activation kernels against straightforward references (attention:
// attention_test.cpp).
#include "kernels/ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "util/cpu_features.h"

namespace herd::kernels {
namespace {

std::vector<float> random_vector(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

TEST(Ops, RmsNormScalesToUnitRootMeanSquareTimesWeight) {
  const int n = 37;  // odd on purpose
  auto x = random_vector(n, 1);
  auto w = random_vector(n, 2);
  std::vector<float> y(n);
  rms_norm(x.data(), w.data(), y.data(), n, 1e-6f);
  double ss = 0;
  for (float v : x) ss += double(v) * v;
  const double scale = 1.0 / std::sqrt(ss / n + 1e-6);
  for (int i = 0; i < n; ++i) EXPECT_NEAR(y[i], x[i] * scale * w[i], 1e-5);
  // In place, no weight.
  rms_norm_rows(x.data(), nullptr, 1, n, n, 1e-6f);
  for (int i = 0; i < n; ++i) EXPECT_NEAR(x[i] * w[i], y[i], 1e-5);
}

TEST(Ops, RopeAtPositionZeroIsIdentity) {
  RopeConfig c;
  c.n_rot = 8;
  std::vector<float> cs(8);
  rope_cos_sin(c, 0, cs.data());
  auto x = random_vector(16, 3);
  auto y = x;
  rope_apply(c, cs.data(), y.data(), 2, 8);
  for (int i = 0; i < 16; ++i) EXPECT_FLOAT_EQ(x[i], y[i]);
}

TEST(Ops, RopeNormalRotatesAdjacentPairsAndNeoxRotatesHalves) {
  RopeConfig c;
  c.n_rot = 4;
  c.freq_base = 10000.0f;
  std::vector<float> cs(4);
  rope_cos_sin(c, 1, cs.data());
  // Pair 0 turns by 1 radian, pair 1 by 10000^(-2/4) = 0.01 radian.
  EXPECT_NEAR(cs[0], std::cos(1.0), 1e-6);
  EXPECT_NEAR(cs[1], std::sin(1.0), 1e-6);
  EXPECT_NEAR(cs[2], std::cos(0.01), 1e-6);
  EXPECT_NEAR(cs[3], std::sin(0.01), 1e-6);

  std::vector<float> x = {1, 0, 0, 0, 7};  // head_dim 5: the last element is not rotated
  rope_apply(c, cs.data(), x.data(), 1, 5);
  EXPECT_NEAR(x[0], std::cos(1.0), 1e-6);
  EXPECT_NEAR(x[1], std::sin(1.0), 1e-6);
  EXPECT_FLOAT_EQ(x[4], 7.0f);

  c.neox = true;
  std::vector<float> y = {1, 0, 0, 0, 7};
  rope_apply(c, cs.data(), y.data(), 1, 5);
  EXPECT_NEAR(y[0], std::cos(1.0), 1e-6);
  EXPECT_NEAR(y[2], std::sin(1.0), 1e-6);  // partner of 0 is n_rot/2 = 2
  EXPECT_NEAR(y[1], 0.0, 1e-6);
}

TEST(Ops, RopeFrequencyFactorsDivideTheAngleAndLinearScalingMultipliesIt) {
  RopeConfig c;
  c.n_rot = 4;
  const float factors[2] = {4.0f, 1.0f};
  c.freq_factors = factors;
  std::vector<float> cs(4);
  rope_cos_sin(c, 2, cs.data());
  EXPECT_NEAR(cs[0], std::cos(0.5), 1e-6);
  c.freq_factors = nullptr;
  c.freq_scale = 0.25f;
  rope_cos_sin(c, 2, cs.data());
  EXPECT_NEAR(cs[1], std::sin(0.5), 1e-6);
}

TEST(Ops, YarnExtrapolatesFastDimensionsInterpolatesSlowOnesAndScalesMagnitude) {
  RopeConfig c;
  c.n_rot = 64;
  c.freq_base = 10000.0f;
  c.freq_scale = 0.25f;
  c.ext_factor = 1.0f;
  c.n_ctx_orig = 4096;
  std::vector<float> cs(64);
  const int pos = 3;
  rope_cos_sin(c, pos, cs.data());
  const double mscale = 1.0 + 0.1 * std::log(4.0);
  // Pair 0 (fastest) keeps its original angle; the last pair (slowest) is interpolated 4x.
  EXPECT_NEAR(cs[0], std::cos(3.0) * mscale, 1e-5);
  const double theta_last = pos * std::pow(10000.0, -62.0 / 64.0);
  EXPECT_NEAR(cs[62], std::cos(theta_last * 0.25) * mscale, 1e-5);
  EXPECT_NEAR(cs[63], std::sin(theta_last * 0.25) * mscale, 1e-5);
}

TEST(Ops, SoftmaxSumsToOneAndSurvivesLargeInputs) {
  std::vector<float> x = {1000.0f, 1001.0f, 999.0f};
  softmax(x.data(), 3);
  EXPECT_NEAR(x[0] + x[1] + x[2], 1.0, 1e-6);
  EXPECT_GT(x[1], x[0]);
  EXPECT_NEAR(x[1] / x[0], std::exp(1.0), 1e-4);
}

TEST(Ops, SwigluIsSiluOfGateTimesUp) {
  const float gate[3] = {-2.0f, 0.0f, 3.0f};
  const float up[3] = {1.5f, 2.0f, -1.0f};
  float out[3];
  swiglu(gate, up, out, 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(out[i], gate[i] / (1.0 + std::exp(-gate[i])) * up[i], 1e-6);
  }
  EXPECT_NEAR(sigmoid(0.0f), 0.5f, 1e-7);
}

}  // namespace
}  // namespace herd::kernels

namespace herd::kernels {
namespace {

// Every instruction set against double precision over the whole useful range of gate values
// (including ones whose exp overflows or underflows) and a length with a partial last vector.
// Tolerance: 4 float ulps relative, the exp approximation's ~2 ulp plus the division and product.
TEST(Ops, SwigluMatchesDoublePrecisionOnEveryInstructionSet) {
  std::vector<float> gate, up;
  for (float g = -120.0f; g <= 120.0f; g += 0.37f) gate.push_back(g);
  for (std::size_t i = 0; i < gate.size(); ++i)
    up.push_back(0.5f + 0.01f * static_cast<float>(i % 7));
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (!isa_supported(isa)) continue;
    set_isa_override(isa);
    std::vector<float> out(gate.size());
    swiglu(gate.data(), up.data(), out.data(), static_cast<std::int64_t>(gate.size()));
    clear_isa_override();
    for (std::size_t i = 0; i < gate.size(); ++i) {
      const double want = gate[i] / (1.0 + std::exp(-static_cast<double>(gate[i]))) * up[i];
      EXPECT_NEAR(out[i], want, 4.8e-7 * std::abs(want) + 1e-30)
          << isa_name(isa) << " gate " << gate[i];
    }
  }
}

}  // namespace
}  // namespace herd::kernels

namespace herd::kernels {
namespace {

// The sum of squares keeps eight double partial sums on every instruction set, so all give the
// same bits, for lengths with and without a partial last vector.
TEST(Ops, RmsNormGivesTheSameBitsOnEveryInstructionSet) {
  for (int n : {1, 7, 8, 37, 2048, 2053}) {
    auto x = random_vector(static_cast<std::size_t>(n), 10 + n);
    for (std::size_t i = 0; i < x.size(); i += 5) x[i] *= 1000.0f;  // a wide range of magnitudes
    auto w = random_vector(static_cast<std::size_t>(n), 20 + n);
    std::vector<float> want(static_cast<std::size_t>(n));
    set_isa_override(Isa::kScalar);
    rms_norm(x.data(), w.data(), want.data(), n, 1e-5f);
    for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
      if (!isa_supported(isa)) continue;
      set_isa_override(isa);
      std::vector<float> got(static_cast<std::size_t>(n));
      rms_norm(x.data(), w.data(), got.data(), n, 1e-5f);
      for (int i = 0; i < n; ++i) ASSERT_EQ(got[i], want[i]) << isa_name(isa) << " n " << n;
    }
    clear_isa_override();
  }
}

}  // namespace
}  // namespace herd::kernels
