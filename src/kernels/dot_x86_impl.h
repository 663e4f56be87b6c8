// x86 dot-product kernels, written once and compiled twice: by dot_avx2.cpp (AVX2 + FMA + F16C)
// and by dot_avx512.cpp (adds AVX-512 VNNI, which fuses the u8 x s8 and i16 x i16 dot steps).
// Everything here has internal linkage, so the two builds never mix at link time.
// Include only from those two files.
//
// Integer scheme (as llama.cpp's x86 paths): weights are unpacked to bytes, activations are int8;
// u8 x s8 products are summed in pairs (maddubs) or fours (vpdpbusd). Symmetric types (Q4_0,
// Q5_0, Q8_0) use the sign trick |w| x sign(x, w); K-quants multiply the i16 pair sums by their
// sub-block scales (madd / vpdpwssd), and offsets / mins go through the activations' bsums.
// No intermediate can saturate: |maddubs| <= 2 * 128 * 127 < 32768.
#pragma once

#include <immintrin.h>

#include <cstring>

#include "kernels/dot.h"
#include "kernels/prefetch.h"
#include "tensor/blocks.h"
#include "tensor/fp16.h"

namespace herd::kernels {
namespace {

using tensor::kQKK;

// --- primitives -----------------------------------------------------------------------------

inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(acc, u, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

// acc + pairwise sums of (u8 x s8 pair sums) x scale16.
inline __m256i dot_u8s8_scaled(__m256i acc, __m256i u, __m256i s, __m256i scale16) {
  const __m256i p16 = _mm256_maddubs_epi16(u, s);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpwssd_epi32(acc, p16, scale16);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(p16, scale16));
#endif
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// F16C: one instruction each, bit-identical to tensor/fp16.h.
inline float half_to_float(std::uint16_t h) {
  return _cvtsh_ss(h);
}
inline float round_to_half(float f) {
  return _cvtsh_ss(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}

inline __m256i loadu(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// 32 bits of qh -> 32 bytes, 0xFF where the bit is set (byte j <- bit j).
inline __m256i expand_bits(std::uint32_t bits) {
  const __m256i shuffle = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101,
                                             0x0202020202020202, 0x0303030303030303);
  const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuffle);
  const __m256i mask = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  return _mm256_cmpeq_epi8(_mm256_and_si256(v, mask), mask);
}

// 16 packed nibbles -> 32 bytes: low nibbles (elements 0..15) then high (16..31).
inline __m256i unpack_nibbles(const std::uint8_t* qs) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}

// Eight int32 vectors of 8 (already in -127..127) -> 32 int8 in order.
inline __m256i pack_i32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_packs_epi32(a, b);
  const __m256i cd = _mm256_packs_epi32(c, d);
  const __m256i p = _mm256_packs_epi16(ab, cd);
  return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

inline __m256i round_to_i32(__m256 v, __m256 scale) {
  return _mm256_cvtps_epi32(
      _mm256_round_ps(_mm256_mul_ps(v, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

inline float absmax(const float* x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int j = 0; j < n; j += 8)
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// --- activation quantizers (byte-identical to quantize_activations.cpp) ----------------------

void quantize_q8a(const float* x, void* out, std::int64_t n) {
  auto* b = static_cast<BlockQ8A*>(out);
  for (std::int64_t i = 0; i < n / 32; ++i, x += 32) {
    const float amax = absmax(x, 32);
    const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    const __m256i q0 = round_to_i32(_mm256_loadu_ps(x), id);
    const __m256i q1 = round_to_i32(_mm256_loadu_ps(x + 8), id);
    const __m256i q2 = round_to_i32(_mm256_loadu_ps(x + 16), id);
    const __m256i q3 = round_to_i32(_mm256_loadu_ps(x + 24), id);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(b[i].qs), pack_i32_to_i8(q0, q1, q2, q3));
    b[i].sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3)));
    b[i].d = round_to_half(amax / 127.0f);
  }
}

void quantize_q8k(const float* x, void* out, std::int64_t n) {
  auto* b = static_cast<tensor::BlockQ8_K*>(out);
  for (std::int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    const float amax = absmax(x, kQKK);
    const float iscale = amax != 0.0f ? 127.0f / amax : 0.0f;
    const __m256 id = _mm256_set1_ps(iscale);
    for (int j = 0; j < kQKK; j += 32) {
      const __m256i q0 = round_to_i32(_mm256_loadu_ps(x + j), id);
      const __m256i q1 = round_to_i32(_mm256_loadu_ps(x + j + 8), id);
      const __m256i q2 = round_to_i32(_mm256_loadu_ps(x + j + 16), id);
      const __m256i q3 = round_to_i32(_mm256_loadu_ps(x + j + 24), id);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(b[i].qs + j), pack_i32_to_i8(q0, q1, q2, q3));
      b[i].bsums[j / 16] = static_cast<std::int16_t>(hsum_i32(_mm256_add_epi32(q0, q1)));
      b[i].bsums[j / 16 + 1] = static_cast<std::int16_t>(hsum_i32(_mm256_add_epi32(q2, q3)));
    }
    b[i].d = amax != 0.0f ? 1.0f / iscale : 0.0f;
  }
}

// --- float weights ---------------------------------------------------------------------------

struct LoadF32 {
  static __m256 load(const void* w, std::int64_t i) {
    return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  }
  static float scalar(const void* w, std::int64_t i) { return static_cast<const float*>(w)[i]; }
};
struct LoadF16 {
  static __m256 load(const void* w, std::int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(
        reinterpret_cast<const __m128i*>(static_cast<const std::uint16_t*>(w) + i)));
  }
  static float scalar(const void* w, std::int64_t i) {
    return tensor::fp16_to_fp32(static_cast<const std::uint16_t*>(w)[i]);
  }
};
struct LoadBF16 {
  static __m256 load(const void* w, std::int64_t i) {
    const __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const std::uint16_t*>(w) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float scalar(const void* w, std::int64_t i) {
    return tensor::bf16_to_fp32(static_cast<const std::uint16_t*>(w)[i]);
  }
};

// NC tokens; U independent accumulators per token so that even one token keeps the FMA units busy.
template <class Load, int NC>
void tile_float(std::int64_t n, const void* w, const void* x, std::size_t x_stride, float* y,
                std::int64_t ldy) {
  constexpr int U = NC >= 4 ? 1 : 4 / NC;
  const float* xs[NC];
  for (int c = 0; c < NC; ++c) {
    xs[c] = reinterpret_cast<const float*>(static_cast<const std::uint8_t*>(x) + c * x_stride);
  }
  __m256 acc[NC][U];
  for (auto& a : acc)
    for (auto& v : a) v = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 8 * U <= n; i += 8 * U) {
    for (int u = 0; u < U; ++u) {
      const __m256 wv = Load::load(w, i + 8 * u);
      for (int c = 0; c < NC; ++c) {
        acc[c][u] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xs[c] + i + 8 * u), acc[c][u]);
      }
    }
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 wv = Load::load(w, i);
    for (int c = 0; c < NC; ++c)
      acc[c][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xs[c] + i), acc[c][0]);
  }
  for (int c = 0; c < NC; ++c) {
    for (int u = 1; u < U; ++u) acc[c][0] = _mm256_add_ps(acc[c][0], acc[c][u]);
    float s = hsum(acc[c][0]);
    for (std::int64_t k = i; k < n; ++k) s += Load::scalar(w, k) * xs[c][k];
    y[c * ldy] = s;
  }
}

// --- 32-wide quantized weights against BlockQ8A -----------------------------------------------

// A decoded weight block: bytes ready for dot_u8s8, its scale, and (affine types) its min.
struct Decoded32 {
  __m256i u;     // |w| (symmetric types) or w (affine types, unsigned)
  __m256i sign;  // w itself for the sign trick (symmetric types)
  float d;
  float m;
};

struct Q4_0 {
  using Block = tensor::BlockQ4_0;
  static constexpr bool kSymmetric = true;
  static Decoded32 decode(const Block& b) {
    const __m256i w = _mm256_sub_epi8(unpack_nibbles(b.qs), _mm256_set1_epi8(8));
    return {_mm256_sign_epi8(w, w), w, half_to_float(b.d), 0.0f};
  }
};
struct Q4_1 {
  using Block = tensor::BlockQ4_1;
  static constexpr bool kSymmetric = false;
  static Decoded32 decode(const Block& b) {
    return {unpack_nibbles(b.qs), _mm256_setzero_si256(), half_to_float(b.d), half_to_float(b.m)};
  }
};
inline __m256i q5_bytes(const std::uint8_t* qs, const std::uint8_t* qh) {
  std::uint32_t bits;
  std::memcpy(&bits, qh, 4);
  const __m256i high = _mm256_and_si256(expand_bits(bits), _mm256_set1_epi8(0x10));
  return _mm256_or_si256(unpack_nibbles(qs), high);
}
struct Q5_0 {
  using Block = tensor::BlockQ5_0;
  static constexpr bool kSymmetric = true;
  static Decoded32 decode(const Block& b) {
    const __m256i w = _mm256_sub_epi8(q5_bytes(b.qs, b.qh), _mm256_set1_epi8(16));
    return {_mm256_sign_epi8(w, w), w, half_to_float(b.d), 0.0f};
  }
};
struct Q5_1 {
  using Block = tensor::BlockQ5_1;
  static constexpr bool kSymmetric = false;
  static Decoded32 decode(const Block& b) {
    return {q5_bytes(b.qs, b.qh), _mm256_setzero_si256(), half_to_float(b.d), half_to_float(b.m)};
  }
};
struct Q8_0 {
  using Block = tensor::BlockQ8_0;
  static constexpr bool kSymmetric = true;
  static Decoded32 decode(const Block& b) {
    const __m256i w = loadu(b.qs);
    return {_mm256_sign_epi8(w, w), w, half_to_float(b.d), 0.0f};
  }
};

template <class T, int NC>
void tile_q32(std::int64_t n, const void* w, const void* x, std::size_t x_stride, float* y,
              std::int64_t ldy) {
  constexpr int U = NC >= 2 ? 1 : 2;  // two chains when only one token
  const auto* wb = static_cast<const typename T::Block*>(w);
  const BlockQ8A* xb[NC];
  for (int c = 0; c < NC; ++c) {
    xb[c] = reinterpret_cast<const BlockQ8A*>(static_cast<const std::uint8_t*>(x) + c * x_stride);
  }
  __m256 acc[NC][U];
  float min_acc[NC] = {};
  for (auto& a : acc)
    for (auto& v : a) v = _mm256_setzero_ps();
  const std::int64_t nb = n / 32;
  auto step = [&](std::int64_t i, int u) {
    prefetch_ahead<sizeof(typename T::Block)>(wb + i);
    const Decoded32 dw = T::decode(wb[i]);
    const __m256 dwv = _mm256_set1_ps(dw.d);
    for (int c = 0; c < NC; ++c) {
      const BlockQ8A& xc = xb[c][i];
      const __m256i xv = loadu(xc.qs);
      const __m256i s = T::kSymmetric ? _mm256_sign_epi8(xv, dw.sign) : xv;
      const __m256i isum = dot_u8s8(_mm256_setzero_si256(), dw.u, s);
      const __m256 scale = _mm256_mul_ps(dwv, _mm256_broadcast_ss(&xc.d));
      acc[c][u] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc[c][u]);
      if constexpr (!T::kSymmetric) min_acc[c] += dw.m * xc.d * static_cast<float>(xc.sum);
    }
  };
  std::int64_t i = 0;
  for (; i + U <= nb; i += U) {
    for (int u = 0; u < U; ++u) step(i + u, u);
  }
  for (; i < nb; ++i) step(i, 0);
  for (int c = 0; c < NC; ++c) {
    for (int u = 1; u < U; ++u) acc[c][0] = _mm256_add_ps(acc[c][0], acc[c][u]);
    y[c * ldy] = hsum(acc[c][0]) + min_acc[c];
  }
}

}  // namespace
}  // namespace herd::kernels

#include "kernels/dot_x86_kquants.h"
