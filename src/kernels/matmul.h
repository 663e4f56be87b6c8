// Matrix products of weights (any supported tensor type) with float activations.
// Decode is a matrix-vector product per token (n_tokens == 1); prefill multiplies a whole batch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "tensor/type.h"
#include "util/thread_pool.h"

namespace herd::kernels {

// A 2-D weight in GGML order: `rows` rows of `cols` elements, row r at data + r * row_stride.
// A slice of a 3-D tensor (one expert of a MoE weight) is a Matrix too.
struct Matrix {
  tensor::Type type = tensor::Type::kF32;
  const void* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::size_t row_stride = 0;  // bytes

  const std::uint8_t* row(std::int64_t r) const {
    return static_cast<const std::uint8_t*>(data) + static_cast<std::size_t>(r) * row_stride;
  }
};

// y[t * ldy + r] = sum_c W[r, c] * x[t * ldx + c] for t < n_tokens, r < rows.
// x: [n_tokens, cols] f32 (row stride ldx >= cols); y: [n_tokens, rows] (ldy >= rows).
// Work is split over the pool. Throws herd::Error for an unsupported type.
void matmul(const Matrix& w, const float* x, std::int64_t n_tokens, std::int64_t ldx, float* y,
            std::int64_t ldy, ThreadPool& pool);

// One of several products of the same activations: y[t * ldy + r] = W[r] . x[t].
struct Product {
  const Matrix* w = nullptr;
  float* y = nullptr;
  std::int64_t ldy = 0;
};

// The products of one input with several matrices of the same type and width (Q, K and V; gate
// and up): the activations are rounded once and all rows share one parallel region, instead of
// one of each per matrix. Matrices of different types are multiplied one after the other.
void matmul_shared_input(std::span<const Product> products, const float* x, std::int64_t n_tokens,
                         std::int64_t ldx, ThreadPool& pool);

// Same, single-threaded, over rows [row_begin, row_end) only (for callers that already split work).
void matmul_rows(const Matrix& w, const float* x, std::int64_t n_tokens, std::int64_t ldx, float* y,
                 std::int64_t ldy, std::int64_t row_begin, std::int64_t row_end);

// Dequantizes row r of w into out[0, cols).
void dequantize_row(const Matrix& w, std::int64_t r, float* out);

}  // namespace herd::kernels
