// The instruction-set kernels against the scalar ones at row lengths that exercise every part of
// the grouped activation layouts (BlockQ8X: whole 8-block groups, then BlockQ8A tail blocks) and
// token counts around the tile width. All paths compute the same per-block integer sums, so
// they may differ only in float summation order: 1e-5 of the row's magnitude.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/matmul.h"
#include "tensor/type.h"
#include "util/cpu_features.h"
#include "util/thread_pool.h"

namespace herd::kernels {
namespace {

using tensor::Type;

struct IsaScope {
  explicit IsaScope(Isa isa) { set_isa_override(isa); }
  ~IsaScope() { clear_isa_override(); }
};

std::vector<float> gaussian(std::int64_t n, unsigned seed, float mean = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(mean, 1.0f);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

struct Case {
  Type type;
  std::int64_t cols;
};

class MatmulLayouts : public ::testing::TestWithParam<Case> {};

TEST_P(MatmulLayouts, EveryIsaMatchesScalarAtGroupAndTailLengths) {
  const auto [type, cols] = GetParam();
  const std::int64_t rows = 21;
  const std::size_t stride = tensor::row_bytes(type, cols);
  // +8: weights not vector-aligned, as a tensor in a GGUF may be (its alignment is at least 8).
  std::vector<std::uint8_t> bytes(stride * rows + 8);
  const auto values = gaussian(rows * cols, 7);
  for (std::int64_t r = 0; r < rows; ++r) {
    tensor::quantize(type, values.data() + r * cols, bytes.data() + 8 + r * stride, cols);
  }
  const Matrix w{type, bytes.data() + 8, rows, cols, stride};
  ThreadPool pool(2);
  for (std::int64_t n_tokens : {1, 3, 8, 11}) {
    // A non-zero mean makes the offset correction (sum of activations) matter.
    const auto x = gaussian(n_tokens * cols, 40 + static_cast<unsigned>(n_tokens), 0.5f);
    std::vector<float> expected(static_cast<std::size_t>(n_tokens * rows));
    {
      IsaScope scope(Isa::kScalar);
      matmul(w, x.data(), n_tokens, cols, expected.data(), rows, pool);
    }
    for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
      if (!isa_supported(isa)) continue;
      IsaScope scope(isa);
      std::vector<float> y(expected.size(), NAN);
      matmul(w, x.data(), n_tokens, cols, y.data(), rows, pool);
      for (std::size_t i = 0; i < y.size(); ++i) {
        const std::int64_t t = static_cast<std::int64_t>(i) / rows;
        const std::int64_t r = static_cast<std::int64_t>(i) % rows;
        double magnitude = 0;
        std::vector<float> row(static_cast<std::size_t>(cols));
        dequantize_row(w, r, row.data());
        for (std::int64_t c = 0; c < cols; ++c) magnitude += std::fabs(row[c] * x[t * cols + c]);
        ASSERT_NEAR(y[i], expected[i], 1e-5 * magnitude)
            << tensor::type_name(type) << " cols " << cols << " isa " << isa_name(isa) << " token "
            << t << " row " << r;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Lengths, MatmulLayouts,
                         ::testing::Values(Case{Type::kQ4_0, 32 * 3}, Case{Type::kQ4_0, 32 * 8},
                                           Case{Type::kQ4_0, 32 * 13}, Case{Type::kQ4_0, 32 * 40},
                                           Case{Type::kQ8_0, 32 * 3}, Case{Type::kQ8_0, 32 * 8},
                                           Case{Type::kQ8_0, 32 * 13}, Case{Type::kQ8_0, 32 * 40},
                                           Case{Type::kQ4_K, 256 * 1}, Case{Type::kQ4_K, 256 * 5},
                                           Case{Type::kQ6_K, 256 * 1}, Case{Type::kQ6_K, 256 * 5}));

}  // namespace
}  // namespace herd::kernels
