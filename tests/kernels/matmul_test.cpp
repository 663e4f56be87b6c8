// matmul against a double-precision product of the dequantized weights, for every type and
// every instruction set this CPU has, at odd shapes, strides and row ranges.
//
// Tolerance: quantized weights are multiplied by activations rounded to 8-bit blocks (as
// llama.cpp does). Per element that rounding leaves an error of rms amax / 127 / sqrt(12), about
// 0.7% of the activations' rms for Gaussian data, so the error of an output relative to
// sqrt(sum_c (w_rc * x_c)^2) is about 0.007 * sqrt(2) on average; 0.04 is > 5 sigma. Float weights
// keep float activations: only summation order differs, so 1e-4 relative.
#include "kernels/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "support/misalign.h"
#include "tensor/type.h"
#include "util/cpu_features.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace herd::kernels {
namespace {

using herd::testing::kMisalign;

using tensor::Type;

struct Weights {
  std::vector<std::uint8_t> bytes;
  std::vector<float> dequantized;  // [rows, cols]
  Matrix m;
};

Weights make_weights(Type type, std::int64_t rows, std::int64_t cols, unsigned seed,
                     std::size_t pad = 0) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  Weights w;
  const std::size_t stride = tensor::row_bytes(type, cols) + pad;
  w.bytes.assign(stride * static_cast<std::size_t>(rows) + kMisalign, 0);
  w.dequantized.resize(static_cast<std::size_t>(rows * cols));
  std::vector<float> row(static_cast<std::size_t>(cols));
  for (std::int64_t r = 0; r < rows; ++r) {
    for (float& v : row) v = dist(rng);
    tensor::quantize(type, row.data(), w.bytes.data() + kMisalign + r * stride, cols);
    tensor::dequantize(type, w.bytes.data() + kMisalign + r * stride,
                       w.dequantized.data() + r * cols, cols);
  }
  w.m = Matrix{type, w.bytes.data() + kMisalign, rows, cols, stride};
  return w;
}

std::vector<float> make_activations(std::int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

double tolerance(Type type) {
  return type == Type::kF32 || type == Type::kF16 || type == Type::kBF16 ? 1e-4 : 0.04;
}

// Checks y[t, r] for r in [r0, r1) against the double reference; returns the worst relative error.
double worst_error(const Weights& w, const std::vector<float>& x, std::int64_t n_tokens,
                   std::int64_t ldx, const std::vector<float>& y, std::int64_t ldy, std::int64_t r0,
                   std::int64_t r1) {
  double worst = 0;
  for (std::int64_t t = 0; t < n_tokens; ++t) {
    for (std::int64_t r = r0; r < r1; ++r) {
      double ref = 0, scale = 0;
      for (std::int64_t c = 0; c < w.m.cols; ++c) {
        const double p = static_cast<double>(w.dequantized[r * w.m.cols + c]) * x[t * ldx + c];
        ref += p;
        scale += p * p;
      }
      const double err = std::fabs(y[t * ldy + r] - ref) / std::sqrt(scale + 1e-30);
      worst = std::max(worst, err);
    }
  }
  return worst;
}

std::vector<Isa> isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kNeon}) {
    if (isa_supported(isa)) out.push_back(isa);
  }
  return out;
}

struct IsaScope {
  explicit IsaScope(Isa isa) { set_isa_override(isa); }
  ~IsaScope() { clear_isa_override(); }
};

class MatmulAllTypes : public ::testing::TestWithParam<Type> {};

TEST_P(MatmulAllTypes, MatchesDoubleReferenceOnEveryIsa) {
  const Type type = GetParam();
  const std::int64_t block = tensor::traits(type).block_size;
  const std::int64_t cols = block == 1 ? 333 : 3 * std::max<std::int64_t>(block, 256);
  const std::int64_t rows = 37;
  const Weights w = make_weights(type, rows, cols, 11, /*pad=*/block == 1 ? 8 : 0);
  ThreadPool pool(3);
  for (Isa isa : isas()) {
    IsaScope scope(isa);
    for (std::int64_t n_tokens : {1, 2, 5, 9, 17}) {
      const std::int64_t ldx = cols + 3, ldy = rows + 5;
      const auto x = make_activations(n_tokens * ldx, 100 + static_cast<unsigned>(n_tokens));
      std::vector<float> y(static_cast<std::size_t>(n_tokens * ldy), NAN);
      matmul(w.m, x.data(), n_tokens, ldx, y.data(), ldy, pool);
      EXPECT_LT(worst_error(w, x, n_tokens, ldx, y, ldy, 0, rows), tolerance(type))
          << tensor::type_name(type) << " isa " << isa_name(isa) << " tokens " << n_tokens;
    }
  }
}

TEST_P(MatmulAllTypes, RowRangeWritesOnlyItsRows) {
  const Type type = GetParam();
  const std::int64_t block = tensor::traits(type).block_size;
  const std::int64_t cols = block == 1 ? 64 : std::max<std::int64_t>(block, 256);
  const std::int64_t rows = 21;
  const Weights w = make_weights(type, rows, cols, 5);
  for (Isa isa : isas()) {
    IsaScope scope(isa);
    for (std::int64_t n_tokens : {1, 6}) {
      const auto x = make_activations(n_tokens * cols, 9);
      std::vector<float> y(static_cast<std::size_t>(n_tokens * rows), -123.0f);
      matmul_rows(w.m, x.data(), n_tokens, cols, y.data(), rows, 3, 16);
      EXPECT_LT(worst_error(w, x, n_tokens, cols, y, rows, 3, 16), tolerance(type))
          << tensor::type_name(type) << " isa " << isa_name(isa);
      for (std::int64_t t = 0; t < n_tokens; ++t) {
        for (std::int64_t r = 0; r < rows; ++r) {
          if (r < 3 || r >= 16) {
            EXPECT_EQ(y[t * rows + r], -123.0f) << r;
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, MatmulAllTypes,
                         ::testing::Values(Type::kF32, Type::kF16, Type::kBF16, Type::kQ8_0,
                                           Type::kQ4_0, Type::kQ4_1, Type::kQ5_0, Type::kQ5_1,
                                           Type::kQ2_K, Type::kQ3_K, Type::kQ4_K, Type::kQ5_K,
                                           Type::kQ6_K,
                                           // No dot kernels: the dequantize-then-float path.
                                           Type::kQ8_1, Type::kQ8_K),
                         [](const ::testing::TestParamInfo<Type>& info) {
                           return std::string(tensor::type_name(info.param));
                         });

TEST(Matmul, DequantizeRowMatchesTypeTable) {
  const Weights w = make_weights(Type::kQ4_K, 3, 512, 1);
  std::vector<float> row(512);
  dequantize_row(w.m, 2, row.data());
  for (int c = 0; c < 512; ++c) ASSERT_EQ(row[c], w.dequantized[2 * 512 + c]);
}

TEST(Matmul, RejectsUnsupportedTypeAndPartialBlocks) {
  ThreadPool pool(1);
  std::vector<std::uint8_t> data(4096);
  std::vector<float> x(64), y(4);
  const Matrix ints{Type::kI32, data.data(), 4, 16, 64};
  EXPECT_THROW(matmul(ints, x.data(), 1, 16, y.data(), 4, pool), Error);
  const Matrix partial{Type::kQ4_0, data.data(), 2, 48, 64};
  EXPECT_THROW(matmul(partial, x.data(), 1, 48, y.data(), 2, pool), Error);
}

}  // namespace
}  // namespace herd::kernels

namespace herd::kernels {
namespace {

// Shared-input products reuse the same kernels and the same rounded activations as one matmul
// per matrix, so the outputs are bit for bit those of separate calls: for decode (1 token), for
// small batches (tile kernels) and for prefill (blocked kernels where the type has them), and
// when the types differ (then it simply multiplies one after the other).
TEST(MatmulSharedInput, EqualsOneMatmulPerMatrix) {
  ThreadPool pool(3);
  const std::int64_t cols = 512;
  for (Type second : {Type::kQ4_0, Type::kQ8_0, Type::kQ4_K, Type::kQ6_K, Type::kF16}) {
    const Weights q = make_weights(Type::kQ4_0, 70, cols, 1);
    const Weights k = make_weights(second, 33, cols, 2);
    const Weights v = make_weights(Type::kQ4_0, 17, cols, 3);
    for (std::int64_t n_tokens : {1, 5, 23}) {
      const auto x = make_activations(n_tokens * cols, 4);
      std::vector<float> shared(static_cast<std::size_t>(n_tokens * 120), -1.0f);
      std::vector<float> separate(shared.size(), -1.0f);
      // One output buffer, three column ranges: Q at 0, K at 70, V at 103 (ldy 120).
      const Product products[] = {{&q.m, shared.data(), 120},
                                  {&k.m, shared.data() + 70, 120},
                                  {&v.m, shared.data() + 103, 120}};
      matmul_shared_input(products, x.data(), n_tokens, cols, pool);
      matmul(q.m, x.data(), n_tokens, cols, separate.data(), 120, pool);
      matmul(k.m, x.data(), n_tokens, cols, separate.data() + 70, 120, pool);
      matmul(v.m, x.data(), n_tokens, cols, separate.data() + 103, 120, pool);
      for (std::size_t i = 0; i < shared.size(); ++i) {
        ASSERT_EQ(shared[i], separate[i])
            << tensor::type_name(second) << " tokens " << n_tokens << " index " << i;
      }
    }
  }
}

}  // namespace
}  // namespace herd::kernels
