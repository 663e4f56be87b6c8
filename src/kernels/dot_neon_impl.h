// Shared pieces of the AArch64 dot-product kernels (dot_neon.cpp: activation quantizers, float
// and 32-wide types; dot_k_neon.cpp: K-quants). Built with NEON + the ARMv8.2 dot-product
// extension (cmake/herd.cmake) and reached only when the CPU reports sdot
// (cpu_features().neon_dotprod). Everything here has internal linkage; include only from
// *_neon.cpp.
//
// Integer scheme: weights are decoded to signed bytes with their offset already subtracted
// (Q4_0: q - 8, Q6_K: q - 32), so one sdot against the int8 activations gives the scalar
// kernel's "dot - offset * sum" directly. sdot sums four s8 x s8 products into an int32 lane:
// nothing can saturate (|lane| <= 4 * 128 * 128 per step). K-quant sub-block sums are multiplied
// by their scales in int32 lanes and reduced once per super-block, so every integer equals the
// scalar one; only the float summation order differs (kernels/dot.h).
#pragma once

#include <arm_neon.h>

#include <cstddef>
#include <cstring>

#include "kernels/dot.h"
#include "kernels/prefetch.h"
#include "tensor/blocks.h"

namespace herd::kernels {
namespace {

// Activation rows may start at any byte (tests use odd strides): scalar fields go through memcpy.
inline float load_f32(const void* p) {
  float v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// One fcvt: exact for every half, like tensor::fp16_to_fp32.
inline float half_to_float(std::uint16_t h) {
  __fp16 v;
  std::memcpy(&v, &h, sizeof v);
  return static_cast<float>(v);
}

// acc + the 32-element dot product of w (two halves) with x, in four int32 lanes.
inline int32x4_t dot32(int32x4_t acc, int8x16_t w0, int8x16_t w1, const std::int8_t* x) {
  return vdotq_s32(vdotq_s32(acc, w0, vld1q_s8(x)), w1, vld1q_s8(x + 16));
}

// The fields of an activation block at any address.
struct Q8ARow {
  const std::uint8_t* p;
  float d() const { return load_f32(p + offsetof(BlockQ8A, d)); }
  std::int32_t sum() const {
    std::int32_t s;
    std::memcpy(&s, p + offsetof(BlockQ8A, sum), sizeof s);
    return s;
  }
  const std::int8_t* qs() const {
    return reinterpret_cast<const std::int8_t*>(p + offsetof(BlockQ8A, qs));
  }
};
struct Q8KRow {
  const std::uint8_t* p;
  float d() const { return load_f32(p + offsetof(tensor::BlockQ8_K, d)); }
  const std::int8_t* qs() const {
    return reinterpret_cast<const std::int8_t*>(p + offsetof(tensor::BlockQ8_K, qs));
  }
  // bsums 8 * half .. 8 * half + 7.
  int16x8_t bsums(int half) const {
    return vld1q_s16(reinterpret_cast<const std::int16_t*>(p + offsetof(tensor::BlockQ8_K, bsums)) +
                     8 * half);
  }
};

// A DotTileFn from a kernel with `template <int NC> static void run(n, w, x, x_stride, y, ldy)`:
// NC becomes a compile-time tile width (one accumulator per token stays in a register).
template <class Kernel>
void dispatch_tile(std::int64_t n, const void* w, const void* x, std::size_t x_stride, int nc,
                   float* y, std::int64_t ldy) {
  while (nc > 0) {
    const int now = nc < kMaxTileTokens ? nc : kMaxTileTokens;
    with_tile_width(now, [&](auto width) {
      Kernel::template run<decltype(width)::value>(n, w, x, x_stride, y, ldy);
    });
    nc -= now;
    x = static_cast<const std::uint8_t*>(x) + now * x_stride;
    y += now * ldy;
  }
}

}  // namespace
}  // namespace herd::kernels
