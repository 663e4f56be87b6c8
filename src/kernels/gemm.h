// Blocked matrix-matrix products for prefill (many tokens against the same weights).
//
// The tile kernels of dot.h multiply one weight row by up to 8 tokens and spend most of their
// instructions decoding blocks and applying per-block scales. Here a panel of 32 weight rows is
// first unpacked (once per call, into L2) to unsigned bytes laid out as vpdpbusd consumes them:
// each 64-byte vector holds 4 consecutive columns of 16 rows, one int32 lane per row. A
// register-blocked micro-kernel then multiplies the panel with 6 tokens at a time, every
// activation quad broadcast straight from memory, so per 32-column block and token the work is
// 8 vpdpbusd plus one float scale step per 16 rows. The panel conversion costs O(weights) and is
// shared by all tokens of the call: this is "repacking" without keeping a second copy of the
// weights, so the mapped file stays the only one in memory.
//
// The integers are those of the tile kernels (activations rounded to Q8_0-style blocks for the
// 32-wide types, to Q8_K for the K-quants, as llama.cpp does); only float summation order differs.
#pragma once

#include <cstdint>

#include "kernels/matmul.h"
#include "util/thread_pool.h"

namespace herd::kernels {

// Fewest tokens for which matmul() takes the blocked path (below, the tile kernels win).
inline constexpr std::int64_t kGemmMinTokens = 16;

// True when the active instruction set has a blocked kernel for this weight type.
bool gemm_supported(tensor::Type type);

// As kernels::matmul (y[t * ldy + r] = W[r] . x[t]) for each product, all of one type and
// width; requires gemm_supported of that type.
void gemm(std::span<const Product> products, const float* x, std::int64_t n_tokens,
          std::int64_t ldx, ThreadPool& pool);

// The AVX-512 VNNI implementation (gemm_avx512.cpp; absent from non-x86 builds).
bool gemm_avx512_supports(tensor::Type type);
void gemm_avx512(std::span<const Product> products, const float* x, std::int64_t n_tokens,
                 std::int64_t ldx, ThreadPool& pool);

}  // namespace herd::kernels
