// The NEON sum of squares (kernels/ops_neon.h) gives rms_norm the very bits of the portable loop
// in ops.cpp (eight double partials by i % 8, added in order). Skips off AArch64.
#include "kernels/ops_neon.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace herd::kernels {
namespace {

#if defined(__aarch64__)

double reference_sum_squares(const float* x, std::int64_t n) {
  double part[8] = {};
  for (std::int64_t i = 0; i < n; ++i) part[i % 8] += static_cast<double>(x[i]) * x[i];
  double sum = 0.0;
  for (double p : part) sum += p;
  return sum;
}

TEST(OpsNeon, SumSquaresEqualsThePortableLoopBitForBit) {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 300.0f);
  std::vector<float> x(4099);
  for (float& v : x) v = dist(rng);
  x[10] = 3e38f;  // large squares: a float sum would overflow, the double one must not
  for (std::int64_t n : {0, 1, 7, 8, 9, 64, 4095, 4098}) {
    for (int offset : {0, 1}) {  // an unaligned start too
      const float* p = x.data() + offset;
      EXPECT_EQ(neon::sum_squares(p, n), reference_sum_squares(p, n)) << n << " +" << offset;
    }
  }
}

#else

TEST(OpsNeon, SumSquaresEqualsThePortableLoopBitForBit) {
  GTEST_SKIP() << "the NEON loops exist only on AArch64";
}

#endif

}  // namespace
}  // namespace herd::kernels
