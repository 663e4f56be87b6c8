// Dot products of weight rows with activation rows, one table per instruction set.
//
// Quantized weights are multiplied by activations first rounded to 8-bit blocks (as llama.cpp
// does): BlockQ8A (32-wide) for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, tensor::BlockQ8_K for the K-quants.
// The per-block integer sums are then exact, so every instruction set computes the same
// integers and differs from the scalar reference only in float summation order.
// Float weights (F32/F16/BF16) take float activations unchanged.
//
// Only kernels/ uses this directly; everyone else calls kernels/matmul.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kernels/static_count.h"
#include "tensor/type.h"
#include "util/cpu_features.h"

namespace herd::kernels {

enum class ActivationFormat { kF32, kQ8A, kQ8K, kQ8X };

// herd's activation block for the 32-wide types: d is rounded to half precision like ggml's
// Q8_0 scale (so results track llama.cpp's); sum = sum(qs) feeds the offset / min terms.
struct BlockQ8A {
  float d;
  std::int32_t sum;
  std::int8_t qs[32];
};
static_assert(sizeof(BlockQ8A) == 40);

// The same integers as BlockQ8A, regrouped for the 512-bit Q4_0 / Q8_0 kernels
// (dot_q32_avx512.cpp): eight 32-element blocks per group, in the order those kernels gather
// the weights. qs[h][0] holds elements 0..15 of blocks 4h..4h+3 (16 bytes each), qs[h][1]
// elements 16..31; neg_sum2[h][l] = -2 * sum of block 4h + l / 4 (the integer accumulators
// start there to undo the weights' offset); d as BlockQ8A. A row of n elements is n / 256
// groups followed by (n / 32) % 8 BlockQ8A.
struct BlockQ8X {
  static constexpr int kBlocks = 8;
  std::int8_t qs[2][2][64];
  std::int32_t neg_sum2[2][16];
  float d[kBlocks];
};
static_assert(sizeof(BlockQ8X) == 416);

// Bytes of one activation row of n elements in a format (F32: 4 * n).
std::size_t activation_row_bytes(ActivationFormat format, std::int64_t n);

// Most tokens one tile call handles; a weight row is decoded once per tile.
inline constexpr int kMaxTileTokens = 8;

// Calls tile(std::integral_constant<int, NC>{}) with the compile-time tile width NC equal to nc
// (kMaxTileTokens for anything larger; kernels/static_count.h).
template <class TileFn>
inline void with_tile_width(int nc, TileFn&& tile) {
  with_static_count<kMaxTileTokens>(nc, tile);
}

// y[c * ldy] = dot(weight row, activation row c) for c < nc <= kMaxTileTokens; activation row c
// starts at x + c * x_stride bytes; n is the row length in elements.
using DotTileFn = void (*)(std::int64_t n, const void* w_row, const void* x, std::size_t x_stride,
                           int nc, float* y, std::int64_t ldy);
// Converts one row of n floats to the activation format.
using QuantizeRowFn = void (*)(const float* x, void* out, std::int64_t n);

struct DotKernel {
  ActivationFormat activation = ActivationFormat::kF32;
  DotTileFn tile = nullptr;  // null: this instruction set has no kernel for the type
  // Each token's sum is rounded the same whatever the tile's width (one accumulator chain per
  // token): a decode-shaped product may then take tiles of several tokens (decode_shaped.h).
  // False: it runs one token per tile.
  bool same_sums_at_any_width = false;
};

inline constexpr std::size_t kTypeSlots = 32;  // GGML type ids below this index the table

struct KernelTable {
  Isa isa = Isa::kScalar;
  DotKernel by_type[kTypeSlots];
  QuantizeRowFn quantize_q8a = nullptr;
  QuantizeRowFn quantize_q8k = nullptr;
  QuantizeRowFn quantize_q8x = nullptr;

  const DotKernel* find(tensor::Type type) const {
    const auto id = static_cast<std::size_t>(type);
    return id < kTypeSlots && by_type[id].tile ? &by_type[id] : nullptr;
  }
  QuantizeRowFn quantizer(ActivationFormat format) const {
    switch (format) {
      case ActivationFormat::kQ8A:
        return quantize_q8a;
      case ActivationFormat::kQ8K:
        return quantize_q8k;
      case ActivationFormat::kQ8X:
        return quantize_q8x;
      case ActivationFormat::kF32:
        break;
    }
    return nullptr;
  }
};

// The portable reference kernels (every supported type).
const KernelTable& scalar_kernels();
// The table for an instruction set; types it lacks fall back to the scalar entries.
const KernelTable& kernels_for(Isa isa);

// Per-ISA tables, compiled only where the target has them (dot_avx2.cpp, dot_avx512.cpp,
// dot_neon.cpp).
const KernelTable& avx2_kernels();
const KernelTable& avx512_kernels();
// AArch64 NEON with the dot-product extension (dot_neon.cpp); kernels_for(Isa::kNeon) returns
// it only where cpu_features().neon_dotprod, else the scalar table.
const KernelTable& neon_kernels();
// Sets its Q2_K ... Q6_K entries to the kernels of dot_k_neon.cpp.
void add_neon_k_kernels(KernelTable& table);
// Replaces the AVX-512 table's Q4_0 / Q8_0 entries with the BlockQ8X kernels.
void add_avx512_q32_kernels(KernelTable& table);
// Replaces its Q4_K, Q5_K and Q6_K entries with the 512-bit kernels of dot_k_avx512.cpp.
void add_avx512_k_kernels(KernelTable& table);

}  // namespace herd::kernels
