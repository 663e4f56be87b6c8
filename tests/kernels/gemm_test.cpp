// The blocked prefill path (kernels/gemm.h) against the tile kernels it replaces (matmul_rows,
// which never takes it) on the same weights and activations.
//
// Tolerance: both round the activations to the same 8-bit blocks and compute the same integer
// block sums; they differ only in the order float products are added (per row, cols / 32 terms),
// so each output agrees to a few float ulps of the row's magnitude: 2e-5 of
// sqrt(sum_c (w_rc * x_c)^2) is far above that and far below any wrong block or scale.
#include "kernels/gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "support/misalign.h"
#include "tensor/type.h"
#include "util/cpu_features.h"
#include "util/thread_pool.h"

namespace herd::kernels {
namespace {

using herd::testing::kMisalign;

using tensor::Type;

struct Case {
  Type type;
  std::int64_t rows, cols, tokens;
};

void check(const Case& c, ThreadPool& pool) {
  std::mt19937 rng(static_cast<unsigned>(c.rows * 31 + c.cols + c.tokens));
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const std::size_t stride = tensor::row_bytes(c.type, c.cols) + kMisalign;
  std::vector<std::uint8_t> bytes(stride * static_cast<std::size_t>(c.rows) + kMisalign);
  std::vector<float> wf(static_cast<std::size_t>(c.rows * c.cols));
  std::vector<float> row(static_cast<std::size_t>(c.cols));
  for (std::int64_t r = 0; r < c.rows; ++r) {
    for (float& v : row) v = dist(rng);
    tensor::quantize(c.type, row.data(), bytes.data() + kMisalign + r * stride, c.cols);
    tensor::dequantize(c.type, bytes.data() + kMisalign + r * stride, wf.data() + r * c.cols,
                       c.cols);
  }
  const Matrix w{c.type, bytes.data() + kMisalign, c.rows, c.cols, stride};
  const std::int64_t ldx = c.cols + 5, ldy = c.rows + 3;
  std::vector<float> x(static_cast<std::size_t>(c.tokens * ldx));
  for (float& v : x) v = dist(rng);
  std::vector<float> got(static_cast<std::size_t>(c.tokens * ldy), -7.0f);
  std::vector<float> want(got.size(), -7.0f);
  const Product product{&w, got.data(), ldy};
  gemm(std::span(&product, 1), x.data(), c.tokens, ldx, pool);
  matmul_rows(w, x.data(), c.tokens, ldx, want.data(), ldy, 0, c.rows);
  for (std::int64_t t = 0; t < c.tokens; ++t) {
    for (std::int64_t r = 0; r < ldy; ++r) {
      const std::size_t i = static_cast<std::size_t>(t * ldy + r);
      if (r >= c.rows) {
        ASSERT_EQ(got[i], -7.0f) << "wrote past the last row, token " << t;
        continue;
      }
      double mag = 0.0;
      for (std::int64_t k = 0; k < c.cols; ++k) {
        const double p = static_cast<double>(wf[r * c.cols + k]) * x[t * ldx + k];
        mag += p * p;
      }
      ASSERT_NEAR(got[i], want[i], 2e-5 * std::sqrt(mag))
          << tensor::type_name(c.type) << " " << c.rows << "x" << c.cols << " token " << t
          << " row " << r;
    }
  }
}

TEST(Gemm, MatchesTileKernelsAtOddShapes) {
  if (!isa_supported(Isa::kAvx512)) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  ThreadPool pool(2);
  int checked = 0;
  for (Type type : {Type::kQ4_0, Type::kQ8_0, Type::kQ4_K, Type::kQ5_K, Type::kQ6_K}) {
    ASSERT_TRUE(gemm_supported(type)) << tensor::type_name(type);
    for (std::int64_t rows : {1, 17, 32, 45, 96}) {
      for (std::int64_t cols : {256, 768}) {
        for (std::int64_t tokens : {16, 23, 64}) {
          check({type, rows, cols, tokens}, pool);
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 150);
}

TEST(Gemm, OnlyWithTheInstructionSet) {
  set_isa_override(Isa::kAvx2);
  EXPECT_FALSE(gemm_supported(Type::kQ4_0));
  clear_isa_override();
  EXPECT_FALSE(gemm_supported(Type::kF16));
}

}  // namespace
}  // namespace herd::kernels
