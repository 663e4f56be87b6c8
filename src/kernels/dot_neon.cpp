// AArch64 dot-product kernels, part 1: activation quantizers, float rows and the 32-wide types
// (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), and the table. The K-quants are in dot_k_neon.cpp; the
// integer scheme is described in dot_neon_impl.h.
#include "kernels/dot_neon_impl.h"
#include "tensor/fp16.h"

namespace herd::kernels {
namespace {

using tensor::kQKK;

inline float absmax(const float* x, int n) {
  float32x4_t m = vdupq_n_f32(0.0f);
  for (int j = 0; j < n; j += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + j)));
  return vmaxvq_f32(m);
}

// Round x * scale to nearest even (as std::nearbyint in the default rounding mode) and narrow
// 16 of them to int8; the values are already within -127..127. Returns their sum in *sum.
inline int8x16_t round16(const float* x, float32x4_t scale, int* sum) {
  const int32x4_t q0 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x), scale));
  const int32x4_t q1 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + 4), scale));
  const int32x4_t q2 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + 8), scale));
  const int32x4_t q3 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + 12), scale));
  *sum = vaddvq_s32(vaddq_s32(vaddq_s32(q0, q1), vaddq_s32(q2, q3)));
  const int16x8_t lo = vcombine_s16(vmovn_s32(q0), vmovn_s32(q1));
  const int16x8_t hi = vcombine_s16(vmovn_s32(q2), vmovn_s32(q3));
  return vcombine_s8(vmovn_s16(lo), vmovn_s16(hi));
}

// --- activation quantizers (byte-identical to quantize_activations.cpp) ----------------------

void quantize_q8a(const float* x, void* out, std::int64_t n) {
  auto* b = static_cast<std::uint8_t*>(out);
  for (std::int64_t i = 0; i < n / 32; ++i, x += 32, b += sizeof(BlockQ8A)) {
    BlockQ8A blk;
    const float amax = absmax(x, 32);
    const float32x4_t id = vdupq_n_f32(amax != 0.0f ? 127.0f / amax : 0.0f);
    int s0, s1;
    vst1q_s8(blk.qs, round16(x, id, &s0));
    vst1q_s8(blk.qs + 16, round16(x + 16, id, &s1));
    blk.sum = s0 + s1;
    blk.d = tensor::fp16_to_fp32(tensor::fp32_to_fp16(amax / 127.0f));
    std::memcpy(b, &blk, sizeof blk);
  }
}

void quantize_q8k(const float* x, void* out, std::int64_t n) {
  auto* b = static_cast<tensor::BlockQ8_K*>(out);
  for (std::int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    const float amax = absmax(x, kQKK);
    const float iscale = amax != 0.0f ? 127.0f / amax : 0.0f;
    const float32x4_t id = vdupq_n_f32(iscale);
    for (int g = 0; g < kQKK / 16; ++g) {
      int sum;
      vst1q_s8(b[i].qs + 16 * g, round16(x + 16 * g, id, &sum));
      b[i].bsums[g] = static_cast<std::int16_t>(sum);
    }
    b[i].d = amax != 0.0f ? 1.0f / iscale : 0.0f;
  }
}

// --- float weights ---------------------------------------------------------------------------

struct LoadF32 {
  static float32x4_t load(const void* w, std::int64_t i) {
    return vld1q_f32(static_cast<const float*>(w) + i);
  }
  static constexpr std::size_t kBytes = 4;
  static float scalar(const void* w, std::int64_t i) { return static_cast<const float*>(w)[i]; }
};
struct LoadF16 {
  static constexpr std::size_t kBytes = 2;
  static float32x4_t load(const void* w, std::int64_t i) {
    const std::uint16_t* p = static_cast<const std::uint16_t*>(w) + i;
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
  }
  static float scalar(const void* w, std::int64_t i) {
    return tensor::fp16_to_fp32(static_cast<const std::uint16_t*>(w)[i]);
  }
};
struct LoadBF16 {
  static constexpr std::size_t kBytes = 2;
  static float32x4_t load(const void* w, std::int64_t i) {
    const std::uint16_t* p = static_cast<const std::uint16_t*>(w) + i;
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
  }
  static float scalar(const void* w, std::int64_t i) {
    return tensor::bf16_to_fp32(static_cast<const std::uint16_t*>(w)[i]);
  }
};

// NC tokens; U independent 4-lane accumulators per token so that few tokens still keep the FMA
// pipes busy (their latency is about four times their issue rate).
template <class Load, int NC>
void tile_float(std::int64_t n, const void* w, const void* x, std::size_t x_stride, float* y,
                std::int64_t ldy) {
  constexpr int U = NC == 1 ? 4 : 2;
  const float* xs[NC];
  for (int c = 0; c < NC; ++c) {
    xs[c] = reinterpret_cast<const float*>(static_cast<const std::uint8_t*>(x) + c * x_stride);
  }
  float32x4_t acc[NC][U];
  for (auto& a : acc)
    for (auto& v : a) v = vdupq_n_f32(0.0f);
  std::int64_t i = 0;
  for (; i + 4 * U <= n; i += 4 * U) {
    prefetch_ahead<4 * U * Load::kBytes>(static_cast<const std::uint8_t*>(w) + i * Load::kBytes);
    for (int u = 0; u < U; ++u) {
      const float32x4_t wv = Load::load(w, i + 4 * u);
      for (int c = 0; c < NC; ++c)
        acc[c][u] = vfmaq_f32(acc[c][u], wv, vld1q_f32(xs[c] + i + 4 * u));
    }
  }
  for (; i + 4 <= n; i += 4) {
    const float32x4_t wv = Load::load(w, i);
    for (int c = 0; c < NC; ++c) acc[c][0] = vfmaq_f32(acc[c][0], wv, vld1q_f32(xs[c] + i));
  }
  for (int c = 0; c < NC; ++c) {
    for (int u = 1; u < U; ++u) acc[c][0] = vaddq_f32(acc[c][0], acc[c][u]);
    float s = vaddvq_f32(acc[c][0]);
    for (std::int64_t k = i; k < n; ++k) s += Load::scalar(w, k) * xs[c][k];
    y[c * ldy] = s;
  }
}

// --- 32-wide quantized weights against BlockQ8A -----------------------------------------------

// A decoded weight block: 32 bytes for sdot (symmetric types: offset removed, signed; affine
// types: q itself, at most 31), the scale, and the min of the affine types.
struct Decoded32 {
  int8x16_t w0, w1;  // elements 0..15, 16..31
  float d;
  float m;
};

// Q4 nibbles: elements 0..15 in the low nibbles, 16..31 in the high ones.
inline void unpack_nibbles(const std::uint8_t* qs, uint8x16_t* lo, uint8x16_t* hi) {
  const uint8x16_t v = vld1q_u8(qs);
  *lo = vandq_u8(v, vdupq_n_u8(0x0F));
  *hi = vshrq_n_u8(v, 4);
}

// Q5 fifth bits: bit j of the little-endian qh word goes to bit 4 of element j.
inline void add_fifth_bits(const std::uint8_t* qh, uint8x16_t* lo, uint8x16_t* hi) {
  static const std::uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x16_t bit = vld1q_u8(kBit), five = vdupq_n_u8(0x10);
  const uint8x16_t b0 = vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1]));
  const uint8x16_t b1 = vcombine_u8(vdup_n_u8(qh[2]), vdup_n_u8(qh[3]));
  *lo = vorrq_u8(*lo, vandq_u8(vtstq_u8(b0, bit), five));
  *hi = vorrq_u8(*hi, vandq_u8(vtstq_u8(b1, bit), five));
}

inline Decoded32 signed_block(uint8x16_t lo, uint8x16_t hi, int offset, std::uint16_t d) {
  const int8x16_t o = vdupq_n_s8(static_cast<std::int8_t>(offset));
  return {vsubq_s8(vreinterpretq_s8_u8(lo), o), vsubq_s8(vreinterpretq_s8_u8(hi), o),
          half_to_float(d), 0.0f};
}

struct Q4_0 {
  using Block = tensor::BlockQ4_0;
  static constexpr bool kAffine = false;
  static Decoded32 decode(const Block& b) {
    uint8x16_t lo, hi;
    unpack_nibbles(b.qs, &lo, &hi);
    return signed_block(lo, hi, 8, b.d);
  }
};
struct Q4_1 {
  using Block = tensor::BlockQ4_1;
  static constexpr bool kAffine = true;
  static Decoded32 decode(const Block& b) {
    uint8x16_t lo, hi;
    unpack_nibbles(b.qs, &lo, &hi);
    return {vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi), half_to_float(b.d),
            half_to_float(b.m)};
  }
};
struct Q5_0 {
  using Block = tensor::BlockQ5_0;
  static constexpr bool kAffine = false;
  static Decoded32 decode(const Block& b) {
    uint8x16_t lo, hi;
    unpack_nibbles(b.qs, &lo, &hi);
    add_fifth_bits(b.qh, &lo, &hi);
    return signed_block(lo, hi, 16, b.d);
  }
};
struct Q5_1 {
  using Block = tensor::BlockQ5_1;
  static constexpr bool kAffine = true;
  static Decoded32 decode(const Block& b) {
    uint8x16_t lo, hi;
    unpack_nibbles(b.qs, &lo, &hi);
    add_fifth_bits(b.qh, &lo, &hi);
    return {vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi), half_to_float(b.d),
            half_to_float(b.m)};
  }
};
struct Q8_0 {
  using Block = tensor::BlockQ8_0;
  static constexpr bool kAffine = false;
  static Decoded32 decode(const Block& b) {
    return {vld1q_s8(b.qs), vld1q_s8(b.qs + 16), half_to_float(b.d), 0.0f};
  }
};

// Each weight block is decoded once and multiplied with the block of every token of the tile.
template <class T>
struct Q32Kernel {
  template <int NC>
  static void run(std::int64_t n, const void* w, const void* x, std::size_t x_stride, float* y,
                  std::int64_t ldy) {
    const auto* wb = static_cast<const typename T::Block*>(w);
    const std::uint8_t* xb[NC];
    for (int c = 0; c < NC; ++c) xb[c] = static_cast<const std::uint8_t*>(x) + c * x_stride;
    float32x4_t acc[NC];
    float min_acc[NC] = {};
    for (auto& a : acc) a = vdupq_n_f32(0.0f);
    for (std::int64_t i = 0; i < n / 32; ++i) {
      prefetch_ahead<sizeof(typename T::Block)>(wb + i);
      const Decoded32 dw = T::decode(wb[i]);
      for (int c = 0; c < NC; ++c) {
        const Q8ARow xr{xb[c] + i * sizeof(BlockQ8A)};
        const int32x4_t isum = dot32(vdupq_n_s32(0), dw.w0, dw.w1, xr.qs());
        const float xd = xr.d();
        acc[c] = vfmaq_n_f32(acc[c], vcvtq_f32_s32(isum), dw.d * xd);
        if constexpr (T::kAffine) min_acc[c] += dw.m * xd * static_cast<float>(xr.sum());
      }
    }
    for (int c = 0; c < NC; ++c) y[c * ldy] = vaddvq_f32(acc[c]) + min_acc[c];
  }
};

template <class Load>
struct FloatKernel {
  template <int NC>
  static void run(std::int64_t n, const void* w, const void* x, std::size_t x_stride, float* y,
                  std::int64_t ldy) {
    tile_float<Load, NC>(n, w, x, x_stride, y, ldy);
  }
};

KernelTable make_table() {
  using tensor::Type;
  KernelTable t = scalar_kernels();  // types without a NEON kernel keep the reference one
  t.isa = Isa::kNeon;
  auto set = [&](Type type, ActivationFormat act, DotTileFn fn) {
    t.by_type[static_cast<std::size_t>(type)] = DotKernel{act, fn};
  };
  set(Type::kF32, ActivationFormat::kF32, dispatch_tile<FloatKernel<LoadF32>>);
  set(Type::kF16, ActivationFormat::kF32, dispatch_tile<FloatKernel<LoadF16>>);
  set(Type::kBF16, ActivationFormat::kF32, dispatch_tile<FloatKernel<LoadBF16>>);
  set(Type::kQ4_0, ActivationFormat::kQ8A, dispatch_tile<Q32Kernel<Q4_0>>);
  set(Type::kQ4_1, ActivationFormat::kQ8A, dispatch_tile<Q32Kernel<Q4_1>>);
  set(Type::kQ5_0, ActivationFormat::kQ8A, dispatch_tile<Q32Kernel<Q5_0>>);
  set(Type::kQ5_1, ActivationFormat::kQ8A, dispatch_tile<Q32Kernel<Q5_1>>);
  set(Type::kQ8_0, ActivationFormat::kQ8A, dispatch_tile<Q32Kernel<Q8_0>>);
  add_neon_k_kernels(t);
  t.quantize_q8a = quantize_q8a;
  t.quantize_q8k = quantize_q8k;
  return t;
}

}  // namespace

const KernelTable& neon_kernels() {
  static const KernelTable table = make_table();
  return table;
}

}  // namespace herd::kernels
