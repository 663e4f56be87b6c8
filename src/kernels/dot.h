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

#include "tensor/type.h"
#include "util/cpu_features.h"

namespace herd::kernels {

enum class ActivationFormat { kF32, kQ8A, kQ8K };

// herd's activation block for the 32-wide types: d is rounded to half precision like ggml's
// Q8_0 scale (so results track llama.cpp's); sum = sum(qs) feeds the offset / min terms.
struct BlockQ8A {
  float d;
  std::int32_t sum;
  std::int8_t qs[32];
};
static_assert(sizeof(BlockQ8A) == 40);

// Bytes of one activation row of n elements in a format (F32: 4 * n).
std::size_t activation_row_bytes(ActivationFormat format, std::int64_t n);

// Most tokens one tile call handles; a weight row is decoded once per tile.
inline constexpr int kMaxTileTokens = 8;

// y[c * ldy] = dot(weight row, activation row c) for c < nc <= kMaxTileTokens; activation row c
// starts at x + c * x_stride bytes; n is the row length in elements.
using DotTileFn = void (*)(std::int64_t n, const void* w_row, const void* x, std::size_t x_stride,
                           int nc, float* y, std::int64_t ldy);
// Converts one row of n floats to the activation format.
using QuantizeRowFn = void (*)(const float* x, void* out, std::int64_t n);

struct DotKernel {
  ActivationFormat activation = ActivationFormat::kF32;
  DotTileFn tile = nullptr;  // null: this instruction set has no kernel for the type
};

inline constexpr std::size_t kTypeSlots = 32;  // GGML type ids below this index the table

struct KernelTable {
  Isa isa = Isa::kScalar;
  DotKernel by_type[kTypeSlots];
  QuantizeRowFn quantize_q8a = nullptr;
  QuantizeRowFn quantize_q8k = nullptr;

  const DotKernel* find(tensor::Type type) const {
    const auto id = static_cast<std::size_t>(type);
    return id < kTypeSlots && by_type[id].tile ? &by_type[id] : nullptr;
  }
  QuantizeRowFn quantizer(ActivationFormat format) const {
    return format == ActivationFormat::kQ8A ? quantize_q8a
           : format == ActivationFormat::kQ8K ? quantize_q8k
                                               : nullptr;
  }
};

// The portable reference kernels (every supported type).
const KernelTable& scalar_kernels();
// The table for an instruction set; types it lacks fall back to the scalar entries.
const KernelTable& kernels_for(Isa isa);

// Per-ISA tables, compiled only where the target has them (dot_avx2.cpp, dot_avx512.cpp).
const KernelTable& avx2_kernels();
const KernelTable& avx512_kernels();

}  // namespace herd::kernels
