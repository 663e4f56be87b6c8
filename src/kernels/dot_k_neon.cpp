// AArch64 dot-product kernels, part 2: the K-quants against BlockQ8_K activations (integer
// scheme in dot_neon_impl.h). Each super-block's weights are decoded once per tile, a 16- or
// 32-element piece at a time, and multiplied with every token's activations.
#include "kernels/dot_neon_impl.h"

namespace herd::kernels {
namespace {

using tensor::kQKK;

// 16 bytes; byte l gets bit `bit` of qh[l] moved to bit 4.
inline uint8x16_t high_bit(uint8x16_t qh, int bit) {
  return vandq_u8(vtstq_u8(qh, vdupq_n_u8(static_cast<std::uint8_t>(1u << bit))), vdupq_n_u8(0x10));
}

// Q4_K / Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins (tensor/blocks.h).
template <bool kFiveBit, class Block, int NC>
void tile_q45_k(std::int64_t n, const void* w, const void* x, std::size_t x_stride, float* y,
                std::int64_t ldy) {
  const auto* wb = static_cast<const Block*>(w);
  float sum[NC] = {};
  for (std::int64_t i = 0; i < n / kQKK; ++i) {
    prefetch_ahead<sizeof(Block)>(wb + i);
    const Block& b = wb[i];
    std::uint8_t sc[8], mn[8];
    for (int s = 0; s < 8; ++s) tensor::get_scale_min_k4(s, b.scales, &sc[s], &mn[s]);
    const int16x8_t mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mn)));
    Q8KRow xr[NC];
    int32x4_t isum[NC];
    for (int c = 0; c < NC; ++c) {
      xr[c].p = static_cast<const std::uint8_t*>(x) + c * x_stride + i * sizeof(tensor::BlockQ8_K);
      isum[c] = vdupq_n_s32(0);
    }
    uint8x16_t qh0 = vdupq_n_u8(0), qh1 = vdupq_n_u8(0);
    if constexpr (kFiveBit) {
      qh0 = vld1q_u8(b.qh);
      qh1 = vld1q_u8(b.qh + 16);
    }
    for (int chunk = 0; chunk < 4; ++chunk) {
      const uint8x16_t v0 = vld1q_u8(b.qs + 32 * chunk);
      const uint8x16_t v1 = vld1q_u8(b.qs + 32 * chunk + 16);
      const uint8x16_t m4 = vdupq_n_u8(0x0F);
      uint8x16_t lo0 = vandq_u8(v0, m4), lo1 = vandq_u8(v1, m4);
      uint8x16_t hi0 = vshrq_n_u8(v0, 4), hi1 = vshrq_n_u8(v1, 4);
      if constexpr (kFiveBit) {
        lo0 = vorrq_u8(lo0, high_bit(qh0, 2 * chunk));
        lo1 = vorrq_u8(lo1, high_bit(qh1, 2 * chunk));
        hi0 = vorrq_u8(hi0, high_bit(qh0, 2 * chunk + 1));
        hi1 = vorrq_u8(hi1, high_bit(qh1, 2 * chunk + 1));
      }
      // Quants are at most 31, so they are valid signed bytes.
      const int8x16_t a0 = vreinterpretq_s8_u8(lo0), a1 = vreinterpretq_s8_u8(lo1);
      const int8x16_t b0 = vreinterpretq_s8_u8(hi0), b1 = vreinterpretq_s8_u8(hi1);
      const int sc_lo = sc[2 * chunk], sc_hi = sc[2 * chunk + 1];
      for (int c = 0; c < NC; ++c) {
        const std::int8_t* xq = xr[c].qs() + 64 * chunk;
        isum[c] = vmlaq_n_s32(isum[c], dot32(vdupq_n_s32(0), a0, a1, xq), sc_lo);
        isum[c] = vmlaq_n_s32(isum[c], dot32(vdupq_n_s32(0), b0, b1, xq + 32), sc_hi);
      }
    }
    const float dw = half_to_float(b.d), dmin = half_to_float(b.dmin);
    for (int c = 0; c < NC; ++c) {
      // Sub-block s covers bsums 2s and 2s + 1.
      const int16x8_t bs = vpaddq_s16(xr[c].bsums(0), xr[c].bsums(1));
      const int32x4_t m = vmlal_high_s16(vmull_s16(vget_low_s16(bs), vget_low_s16(mins)), bs, mins);
      const float xd = xr[c].d();
      sum[c] += xd * dw * static_cast<float>(vaddvq_s32(isum[c])) -
                xd * dmin * static_cast<float>(vaddvq_s32(m));
    }
  }
  for (int c = 0; c < NC; ++c) y[c * ldy] = sum[c];
}

// Q6_K: 16 sub-blocks of 16, q - 32 in -32..31 (layout in tensor/blocks.h).
template <int NC>
void tile_q6_k(std::int64_t n, const void* w, const void* x, std::size_t x_stride, float* y,
               std::int64_t ldy) {
  const auto* wb = static_cast<const tensor::BlockQ6_K*>(w);
  float sum[NC] = {};
  const uint8x16_t m4 = vdupq_n_u8(0x0F), m2 = vdupq_n_u8(0x30);
  const int8x16_t offset = vdupq_n_s8(32);
  for (std::int64_t i = 0; i < n / kQKK; ++i) {
    prefetch_ahead<sizeof(tensor::BlockQ6_K)>(wb + i);
    const tensor::BlockQ6_K& b = wb[i];
    const std::uint8_t* xrow[NC];
    int32x4_t isum[NC];
    for (int c = 0; c < NC; ++c) {
      xrow[c] = static_cast<const std::uint8_t*>(x) + c * x_stride + i * sizeof(tensor::BlockQ8_K);
      isum[c] = vdupq_n_s32(0);
    }
    for (int half = 0; half < 2; ++half) {
      const std::uint8_t* ql = b.ql + 64 * half;
      const std::uint8_t* qh = b.qh + 32 * half;
      const uint8x16_t l0 = vld1q_u8(ql), l1 = vld1q_u8(ql + 16);
      const uint8x16_t l2 = vld1q_u8(ql + 32), l3 = vld1q_u8(ql + 48);
      const uint8x16_t h0 = vld1q_u8(qh), h1 = vld1q_u8(qh + 16);
      // Element groups of 16 in order; group g gets scale 8 * half + g.
      uint8x16_t u[8];
      u[0] = vorrq_u8(vandq_u8(l0, m4), vandq_u8(vshlq_n_u8(h0, 4), m2));
      u[1] = vorrq_u8(vandq_u8(l1, m4), vandq_u8(vshlq_n_u8(h1, 4), m2));
      u[2] = vorrq_u8(vandq_u8(l2, m4), vandq_u8(vshlq_n_u8(h0, 2), m2));
      u[3] = vorrq_u8(vandq_u8(l3, m4), vandq_u8(vshlq_n_u8(h1, 2), m2));
      u[4] = vorrq_u8(vshrq_n_u8(l0, 4), vandq_u8(h0, m2));
      u[5] = vorrq_u8(vshrq_n_u8(l1, 4), vandq_u8(h1, m2));
      u[6] = vorrq_u8(vshrq_n_u8(l2, 4), vandq_u8(vshrq_n_u8(h0, 2), m2));
      u[7] = vorrq_u8(vshrq_n_u8(l3, 4), vandq_u8(vshrq_n_u8(h1, 2), m2));
      int8x16_t q[8];
      for (int g = 0; g < 8; ++g) q[g] = vsubq_s8(vreinterpretq_s8_u8(u[g]), offset);
      for (int c = 0; c < NC; ++c) {
        const std::int8_t* xq =
            reinterpret_cast<const std::int8_t*>(xrow[c] + offsetof(tensor::BlockQ8_K, qs)) +
            128 * half;
        for (int g = 0; g < 8; ++g) {
          const int32x4_t p = vdotq_s32(vdupq_n_s32(0), q[g], vld1q_s8(xq + 16 * g));
          isum[c] = vmlaq_n_s32(isum[c], p, b.scales[8 * half + g]);
        }
      }
    }
    const float dw = half_to_float(b.d);
    for (int c = 0; c < NC; ++c) {
      sum[c] += load_f32(xrow[c] + offsetof(tensor::BlockQ8_K, d)) * dw *
                static_cast<float>(vaddvq_s32(isum[c]));
    }
  }
  for (int c = 0; c < NC; ++c) y[c * ldy] = sum[c];
}

// Q2_K: 16 sub-blocks of 16, 2-bit quants; scale in the low nibble, min in the high one.
// Q3_K: the same quants plus a high bit (hmask) whose absence means -4; signed 6-bit scales.
// In both, half h's 32 bytes hold element 128 h + 32 k + l at bit shift 2 k (tensor/blocks.h).
template <bool kThreeBit, int NC>
void tile_q23_k(std::int64_t n, const void* w, const void* x, std::size_t x_stride, float* y,
                std::int64_t ldy) {
  using Block = std::conditional_t<kThreeBit, tensor::BlockQ3_K, tensor::BlockQ2_K>;
  const auto* wb = static_cast<const Block*>(w);
  float sum[NC] = {};
  const uint8x16_t m3 = vdupq_n_u8(3), four = vdupq_n_u8(4);
  for (std::int64_t i = 0; i < n / kQKK; ++i) {
    prefetch_ahead<sizeof(Block)>(wb + i);
    const Block& b = wb[i];
    std::int8_t sc[16];
    if constexpr (kThreeBit) {
      tensor::unpack_q3_k_scales(b.scales, sc);
    } else {
      for (int s = 0; s < 16; ++s) sc[s] = static_cast<std::int8_t>(b.scales[s] & 0xF);
    }
    Q8KRow xr[NC];
    int32x4_t isum[NC];
    for (int c = 0; c < NC; ++c) {
      xr[c].p = static_cast<const std::uint8_t*>(x) + c * x_stride + i * sizeof(tensor::BlockQ8_K);
      isum[c] = vdupq_n_s32(0);
    }
    uint8x16_t hm0 = vdupq_n_u8(0), hm1 = vdupq_n_u8(0);
    if constexpr (kThreeBit) {
      hm0 = vld1q_u8(b.hmask);
      hm1 = vld1q_u8(b.hmask + 16);
    }
    for (int half = 0; half < 2; ++half) {
      const uint8x16_t q0 = vld1q_u8(b.qs + 32 * half), q1 = vld1q_u8(b.qs + 32 * half + 16);
      for (int k = 0; k < 4; ++k) {
        const int shift = 2 * k;
        uint8x16_t u0 = vandq_u8(vshlq_u8(q0, vdupq_n_s8(static_cast<std::int8_t>(-shift))), m3);
        uint8x16_t u1 = vandq_u8(vshlq_u8(q1, vdupq_n_s8(static_cast<std::int8_t>(-shift))), m3);
        int8x16_t w0 = vreinterpretq_s8_u8(u0), w1 = vreinterpretq_s8_u8(u1);
        if constexpr (kThreeBit) {
          // q - 4 where the high bit is clear: subtract 4 there.
          const uint8x16_t bit = vdupq_n_u8(static_cast<std::uint8_t>(1u << (4 * half + k)));
          w0 = vsubq_s8(w0, vreinterpretq_s8_u8(vbicq_u8(four, vtstq_u8(hm0, bit))));
          w1 = vsubq_s8(w1, vreinterpretq_s8_u8(vbicq_u8(four, vtstq_u8(hm1, bit))));
        }
        const int s0 = 8 * half + 2 * k;  // sub-block of elements l < 16; s0 + 1 for the rest
        for (int c = 0; c < NC; ++c) {
          const std::int8_t* xq = xr[c].qs() + 128 * half + 32 * k;
          isum[c] = vmlaq_n_s32(isum[c], vdotq_s32(vdupq_n_s32(0), w0, vld1q_s8(xq)), sc[s0]);
          isum[c] =
              vmlaq_n_s32(isum[c], vdotq_s32(vdupq_n_s32(0), w1, vld1q_s8(xq + 16)), sc[s0 + 1]);
        }
      }
    }
    const float dw = half_to_float(b.d);
    if constexpr (kThreeBit) {
      for (int c = 0; c < NC; ++c)
        sum[c] += xr[c].d() * dw * static_cast<float>(vaddvq_s32(isum[c]));
    } else {
      const uint8x16_t mn = vshrq_n_u8(vld1q_u8(b.scales), 4);
      const int16x8_t m0 = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mn)));
      const int16x8_t m1 = vreinterpretq_s16_u16(vmovl_high_u8(mn));
      const float dmin = half_to_float(b.dmin);
      for (int c = 0; c < NC; ++c) {
        const int16x8_t bs0 = xr[c].bsums(0), bs1 = xr[c].bsums(1);
        int32x4_t m = vmull_s16(vget_low_s16(bs0), vget_low_s16(m0));
        m = vmlal_high_s16(m, bs0, m0);
        m = vmlal_s16(m, vget_low_s16(bs1), vget_low_s16(m1));
        m = vmlal_high_s16(m, bs1, m1);
        const float xd = xr[c].d();
        sum[c] += xd * dw * static_cast<float>(vaddvq_s32(isum[c])) -
                  xd * dmin * static_cast<float>(vaddvq_s32(m));
      }
    }
  }
  for (int c = 0; c < NC; ++c) y[c * ldy] = sum[c];
}

template <bool kThreeBit>
struct Q23KKernel {
  template <int NC>
  static void run(std::int64_t n, const void* w, const void* x, std::size_t s, float* y,
                  std::int64_t ldy) {
    tile_q23_k<kThreeBit, NC>(n, w, x, s, y, ldy);
  }
};
template <bool kFiveBit, class Block>
struct Q45KKernel {
  template <int NC>
  static void run(std::int64_t n, const void* w, const void* x, std::size_t s, float* y,
                  std::int64_t ldy) {
    tile_q45_k<kFiveBit, Block, NC>(n, w, x, s, y, ldy);
  }
};
struct Q6KKernel {
  template <int NC>
  static void run(std::int64_t n, const void* w, const void* x, std::size_t s, float* y,
                  std::int64_t ldy) {
    tile_q6_k<NC>(n, w, x, s, y, ldy);
  }
};

}  // namespace

void add_neon_k_kernels(KernelTable& t) {
  using tensor::Type;
  auto set = [&](Type type, DotTileFn fn) {
    t.by_type[static_cast<std::size_t>(type)] = DotKernel{ActivationFormat::kQ8K, fn};
  };
  set(Type::kQ2_K, dispatch_tile<Q23KKernel<false>>);
  set(Type::kQ3_K, dispatch_tile<Q23KKernel<true>>);
  set(Type::kQ4_K, dispatch_tile<Q45KKernel<false, tensor::BlockQ4_K>>);
  set(Type::kQ5_K, dispatch_tile<Q45KKernel<true, tensor::BlockQ5_K>>);
  set(Type::kQ6_K, dispatch_tile<Q6KKernel>);
}

}  // namespace herd::kernels
