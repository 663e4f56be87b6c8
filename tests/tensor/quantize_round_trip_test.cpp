// quantize -> dequantize on Gaussian data. Each type's bound on the RMS error, relative to the RMS
// of the data, comes from its step size: round-to-nearest leaves a uniform error of rms
// step/sqrt(12) where step = range / levels per (sub-)block. For 32 Gaussian samples the block
// extreme is ~2.1 sigma (range ~4.2 sigma for the affine types); for 16 or 32 samples inside a K
// super-block the sub-block scales are themselves rounded, which adds a little. The bounds are that
// estimate with ~40% headroom, so a wrong layout (errors of order sigma) or a lost bit fails
// clearly.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "tensor/type.h"

namespace herd::tensor {
namespace {

std::vector<float> gaussian(std::int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

double relative_rms_error(Type type, const std::vector<float>& x) {
  const auto n = static_cast<std::int64_t>(x.size());
  std::vector<std::uint8_t> packed(row_bytes(type, n));
  std::vector<float> back(x.size());
  quantize(type, x.data(), packed.data(), n);
  dequantize(type, packed.data(), back.data(), n);
  double err = 0, ref = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    err += (back[i] - x[i]) * (back[i] - x[i]);
    ref += x[i] * x[i];
  }
  return std::sqrt(err / ref);
}

struct Case {
  Type type;
  double bound;
};

class RoundTrip : public ::testing::TestWithParam<Case> {};

TEST_P(RoundTrip, RelativeRmsErrorWithinStepBound) {
  const Case c = GetParam();
  const auto x = gaussian(256 * 64, 7);
  const double e = relative_rms_error(c.type, x);
  EXPECT_LT(e, c.bound) << type_name(c.type);
  // Non-trivial: a quantizer that returned its input would pass the bound but not this
  // (except the float types, which are exact or nearly so).
  if (c.type != Type::kF32) {
    EXPECT_GT(e, 0.0) << type_name(c.type);
  }
  std::printf("%s relative rms error %.4f (bound %.4f)\n", std::string(type_name(c.type)).c_str(),
              e, c.bound);
}

// Estimates (step / sqrt(12), relative to sigma): q8_0 2*2.1/254/3.46 = 0.005; q4_0 2.1/8/3.46
// = 0.076; q4_1 4.2/15/3.46 = 0.081; q5_0 0.038; q5_1 0.039; q8_k ~0.007 (256-wide block,
// extreme ~3 sigma); q6_k (16-wide, 64 levels) ~0.02; q5_k ~0.035; q4_k ~0.07; q3_k (8 levels
// of 16) ~0.14; q2_k (4 levels of 16) ~0.27.
INSTANTIATE_TEST_SUITE_P(
    AllTypes, RoundTrip,
    ::testing::Values(Case{Type::kF32, 1e-30}, Case{Type::kF16, 1e-3}, Case{Type::kBF16, 5e-3},
                      Case{Type::kQ8_0, 0.008}, Case{Type::kQ8_1, 0.008}, Case{Type::kQ4_0, 0.11},
                      Case{Type::kQ4_1, 0.11}, Case{Type::kQ5_0, 0.055}, Case{Type::kQ5_1, 0.055},
                      Case{Type::kQ8_K, 0.010}, Case{Type::kQ6_K, 0.03}, Case{Type::kQ5_K, 0.05},
                      Case{Type::kQ4_K, 0.10}, Case{Type::kQ3_K, 0.20}, Case{Type::kQ2_K, 0.38}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return std::string(type_name(info.param.type));
    });

TEST(RoundTrip, ZeroBlocksStayZero) {
  for (Type t : {Type::kQ4_0, Type::kQ4_1, Type::kQ5_0, Type::kQ5_1, Type::kQ8_0, Type::kQ2_K,
                 Type::kQ3_K, Type::kQ4_K, Type::kQ5_K, Type::kQ6_K, Type::kQ8_K}) {
    std::vector<float> x(256, 0.0f), back(256, 1.0f);
    std::vector<std::uint8_t> packed(row_bytes(t, 256));
    quantize(t, x.data(), packed.data(), 256);
    dequantize(t, packed.data(), back.data(), 256);
    for (float v : back) ASSERT_EQ(v, 0.0f) << type_name(t);
  }
}

TEST(RoundTrip, Q8_0IsExactOnItsOwnGrid) {
  // Values that are integer multiples of amax / 127 come back exactly (up to the fp16 scale).
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i * 4 - 64) / 64.0f;  // -1 .. 0.9375
  x[0] = -127.0f / 64.0f;
  std::vector<std::uint8_t> packed(row_bytes(Type::kQ8_0, 32));
  std::vector<float> back(32);
  quantize(Type::kQ8_0, x.data(), packed.data(), 32);
  dequantize(Type::kQ8_0, packed.data(), back.data(), 32);
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(back[i], x[i], 1e-6f) << i;
}

}  // namespace
}  // namespace herd::tensor
