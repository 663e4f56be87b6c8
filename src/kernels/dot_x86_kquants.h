// K-quant kernels of dot_x86_impl.h (same rules: include only from dot_avx2.cpp / dot_avx512.cpp).
//
// A super-block of 256 weights is decoded once per tile into 8 vectors of unsigned bytes
// (u[k] = elements 32k .. 32k+31) and 8 vectors of int16 scales matching maddubs' pair lanes
// (lanes 0-7 cover the first 16 elements of u[k], lanes 8-15 the last 16). Then, per token:
//   isum = sum_k scale_k . maddubs(u[k], x_k)  -  offset * (bsums . scale16)
//   y   += d * dx * isum  -  dmin * dx * (bsums . min16)
// where scale16 / min16 hold each 16-element group's scale / min (groups as in Q8_K's bsums).
#pragma once

#include <immintrin.h>

#include <cstring>

#include "kernels/dot.h"
#include "kernels/prefetch.h"
#include "tensor/blocks.h"
#include "tensor/fp16.h"

namespace herd::kernels {
namespace {

struct DecodedK {
  __m256i u[8];
  __m256i scale[8];
  __m256i scale16;  // per 16-group scale (for the offset term)
  __m256i min16;    // per 16-group min
  float d;
  float dmin;
};

// sc8: the 16 int8 scales of 16-element groups; u[k] spans groups 2k and 2k+1.
inline void set_group_scales(__m128i sc8, DecodedK& out) {
  for (int k = 0; k < 8; ++k) {
    const char a = static_cast<char>(2 * k), b = static_cast<char>(2 * k + 1);
    const __m128i pick = _mm_setr_epi8(a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b);
    out.scale[k] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, pick));
  }
  out.scale16 = _mm256_cvtepi8_epi16(sc8);
}

// sc8 / mn8: bytes 0..7 hold the 6-bit scales / mins of 32-element sub-blocks.
inline void set_subblock_scales(__m128i sc8, __m128i mn8, DecodedK& out) {
  for (int k = 0; k < 8; ++k) {
    out.scale[k] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, _mm_set1_epi8(static_cast<char>(k))));
  }
  const __m128i pairs = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  out.min16 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(mn8, pairs));
}

inline std::uint32_t load_u32(const std::uint8_t* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline __m256i bit_set(__m256i bytes, int bit) {
  const __m256i mask = _mm256_set1_epi8(static_cast<char>(1 << bit));
  return _mm256_cmpeq_epi8(_mm256_and_si256(bytes, mask), mask);
}

struct Q2K {
  using Block = tensor::BlockQ2_K;
  static constexpr int kOffsetShift = -1;  // no offset
  static constexpr bool kHasMin = true;
  static void decode(const Block& b, DecodedK& out) {
    const __m256i three = _mm256_set1_epi8(3);
    for (int h = 0; h < 2; ++h) {
      const __m256i v = loadu(b.qs + 32 * h);
      for (int k = 0; k < 4; ++k)
        out.u[4 * h + k] = _mm256_and_si256(_mm256_srli_epi16(v, 2 * k), three);
    }
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
    const __m128i low4 = _mm_set1_epi8(0x0F);
    set_group_scales(_mm_and_si128(packed, low4), out);
    out.min16 = _mm256_cvtepi8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), low4));
    out.d = half_to_float(b.d);
    out.dmin = half_to_float(b.dmin);
  }
};

struct Q3K {
  using Block = tensor::BlockQ3_K;
  static constexpr int kOffsetShift = 2;  // q - 4
  static constexpr bool kHasMin = false;
  static void decode(const Block& b, DecodedK& out) {
    const __m256i three = _mm256_set1_epi8(3);
    const __m256i four = _mm256_set1_epi8(4);
    const __m256i hm = loadu(b.hmask);
    for (int h = 0; h < 2; ++h) {
      const __m256i v = loadu(b.qs + 32 * h);
      for (int k = 0; k < 4; ++k) {
        const __m256i low = _mm256_and_si256(_mm256_srli_epi16(v, 2 * k), three);
        out.u[4 * h + k] = _mm256_or_si256(low, _mm256_and_si256(bit_set(hm, 4 * h + k), four));
      }
    }
    // unpack_q3_k_scales (tensor/blocks.h) four bytes at a time.
    const std::uint32_t a0 = load_u32(b.scales), a1 = load_u32(b.scales + 4);
    const std::uint32_t a2 = load_u32(b.scales + 8);
    const std::uint32_t lo = 0x0F0F0F0Fu, hi = 0x03030303u;
    const __m128i sc = _mm_setr_epi32(static_cast<int>((a0 & lo) | ((a2 & hi) << 4)),
                                      static_cast<int>((a1 & lo) | (((a2 >> 2) & hi) << 4)),
                                      static_cast<int>(((a0 >> 4) & lo) | (((a2 >> 4) & hi) << 4)),
                                      static_cast<int>(((a1 >> 4) & lo) | (((a2 >> 6) & hi) << 4)));
    set_group_scales(_mm_sub_epi8(sc, _mm_set1_epi8(32)), out);
    out.d = half_to_float(b.d);
    out.dmin = 0.0f;
  }
};

template <bool kFiveBit>
struct Q45K {
  using Block = std::conditional_t<kFiveBit, tensor::BlockQ5_K, tensor::BlockQ4_K>;
  static constexpr int kOffsetShift = -1;
  static constexpr bool kHasMin = true;
  static void decode(const Block& b, DecodedK& out) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (int c = 0; c < 4; ++c) {
      const __m256i v = loadu(b.qs + 32 * c);
      out.u[2 * c] = _mm256_and_si256(v, low4);
      out.u[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
    }
    if constexpr (kFiveBit) {
      const __m256i qh = loadu(b.qh);
      const __m256i bit4 = _mm256_set1_epi8(0x10);
      for (int k = 0; k < 8; ++k) {
        out.u[k] = _mm256_or_si256(out.u[k], _mm256_and_si256(bit_set(qh, k), bit4));
      }
    }
    // get_scale_min_k4 (tensor/blocks.h) four sub-blocks at a time.
    const std::uint32_t u0 = load_u32(b.scales), u1 = load_u32(b.scales + 4);
    const std::uint32_t u2 = load_u32(b.scales + 8);
    const std::uint32_t sc0 = u0 & 0x3F3F3F3Fu, mn0 = u1 & 0x3F3F3F3Fu;
    const std::uint32_t sc1 = (u2 & 0x0F0F0F0Fu) | (((u0 >> 6) & 0x03030303u) << 4);
    const std::uint32_t mn1 = ((u2 >> 4) & 0x0F0F0F0Fu) | (((u1 >> 6) & 0x03030303u) << 4);
    set_subblock_scales(_mm_setr_epi32(static_cast<int>(sc0), static_cast<int>(sc1), 0, 0),
                        _mm_setr_epi32(static_cast<int>(mn0), static_cast<int>(mn1), 0, 0), out);
    out.d = half_to_float(b.d);
    out.dmin = half_to_float(b.dmin);
  }
};

struct Q6K {
  using Block = tensor::BlockQ6_K;
  static constexpr int kOffsetShift = 5;  // q - 32
  static constexpr bool kHasMin = false;
  static void decode(const Block& b, DecodedK& out) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i bits45 = _mm256_set1_epi8(0x30);
    for (int h = 0; h < 2; ++h) {
      const __m256i l0 = loadu(b.ql + 64 * h);
      const __m256i l1 = loadu(b.ql + 64 * h + 32);
      const __m256i hb = loadu(b.qh + 32 * h);
      // qh bits 2k, 2k+1 become bits 4-5 of element group k.
      out.u[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(l0, low4),
                                         _mm256_and_si256(_mm256_slli_epi16(hb, 4), bits45));
      out.u[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, low4),
                                         _mm256_and_si256(_mm256_slli_epi16(hb, 2), bits45));
      out.u[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                                         _mm256_and_si256(hb, bits45));
      out.u[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                         _mm256_and_si256(_mm256_srli_epi16(hb, 2), bits45));
    }
    set_group_scales(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)), out);
    out.d = half_to_float(b.d);
    out.dmin = 0.0f;
  }
};

template <class T, int NC>
void tile_k(std::int64_t n, const void* w, const void* x, std::size_t x_stride, float* y,
            std::int64_t ldy) {
  const auto* wb = static_cast<const typename T::Block*>(w);
  const tensor::BlockQ8_K* xb[NC];
  for (int c = 0; c < NC; ++c) {
    xb[c] = reinterpret_cast<const tensor::BlockQ8_K*>(static_cast<const std::uint8_t*>(x) +
                                                       c * x_stride);
  }
  __m256 acc[NC];
  for (auto& a : acc) a = _mm256_setzero_ps();
  DecodedK dq;
  for (std::int64_t i = 0; i < n / kQKK; ++i) {
    prefetch_ahead<sizeof(typename T::Block)>(wb + i);
    T::decode(wb[i], dq);
    for (int c = 0; c < NC; ++c) {
      const tensor::BlockQ8_K& xc = xb[c][i];
      // Two chains of four to shorten the dependency on the integer accumulator.
      __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
      for (int k = 0; k < 8; k += 2) {
        s0 = dot_u8s8_scaled(s0, dq.u[k], loadu(xc.qs + 32 * k), dq.scale[k]);
        s1 = dot_u8s8_scaled(s1, dq.u[k + 1], loadu(xc.qs + 32 * k + 32), dq.scale[k + 1]);
      }
      __m256i isum = _mm256_add_epi32(s0, s1);
      const __m256i bsums = loadu(xc.bsums);
      if constexpr (T::kOffsetShift >= 0) {
        isum = _mm256_sub_epi32(
            isum, _mm256_slli_epi32(_mm256_madd_epi16(bsums, dq.scale16), T::kOffsetShift));
      }
      const __m256 dx = _mm256_broadcast_ss(&xc.d);
      acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(_mm256_set1_ps(dq.d), dx),
                               acc[c]);
      if constexpr (T::kHasMin) {
        const __m256i mins = _mm256_madd_epi16(bsums, dq.min16);
        acc[c] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins),
                                  _mm256_mul_ps(_mm256_set1_ps(dq.dmin), dx), acc[c]);
      }
    }
  }
  for (int c = 0; c < NC; ++c) y[c * ldy] = hsum(acc[c]);
}

// --- the table ---------------------------------------------------------------------------------

template <template <int> class Tile>
void dispatch_tile(std::int64_t n, const void* w, const void* x, std::size_t x_stride, int nc,
                   float* y, std::int64_t ldy) {
  with_tile_width(nc, [&](auto width) { Tile<width()>::run(n, w, x, x_stride, y, ldy); });
}

template <class L>
struct FloatTile {
  template <int NC>
  struct T {
    static void run(std::int64_t n, const void* w, const void* x, std::size_t s, float* y,
                    std::int64_t ldy) {
      tile_float<L, NC>(n, w, x, s, y, ldy);
    }
  };
};
template <class Q>
struct Q32Tile {
  template <int NC>
  struct T {
    static void run(std::int64_t n, const void* w, const void* x, std::size_t s, float* y,
                    std::int64_t ldy) {
      tile_q32<Q, NC>(n, w, x, s, y, ldy);
    }
  };
};
template <class Q>
struct KTile {
  template <int NC>
  struct T {
    static void run(std::int64_t n, const void* w, const void* x, std::size_t s, float* y,
                    std::int64_t ldy) {
      tile_k<Q, NC>(n, w, x, s, y, ldy);
    }
  };
};

KernelTable make_x86_table(Isa isa) {
  using tensor::Type;
  KernelTable t;
  t.isa = isa;
  auto set = [&](Type type, ActivationFormat act, DotTileFn fn) {
    t.by_type[static_cast<std::size_t>(type)] = DotKernel{act, fn};
  };
  set(Type::kF32, ActivationFormat::kF32, dispatch_tile<FloatTile<LoadF32>::T>);
  set(Type::kF16, ActivationFormat::kF32, dispatch_tile<FloatTile<LoadF16>::T>);
  set(Type::kBF16, ActivationFormat::kF32, dispatch_tile<FloatTile<LoadBF16>::T>);
  set(Type::kQ4_0, ActivationFormat::kQ8A, dispatch_tile<Q32Tile<Q4_0>::T>);
  set(Type::kQ4_1, ActivationFormat::kQ8A, dispatch_tile<Q32Tile<Q4_1>::T>);
  set(Type::kQ5_0, ActivationFormat::kQ8A, dispatch_tile<Q32Tile<Q5_0>::T>);
  set(Type::kQ5_1, ActivationFormat::kQ8A, dispatch_tile<Q32Tile<Q5_1>::T>);
  set(Type::kQ8_0, ActivationFormat::kQ8A, dispatch_tile<Q32Tile<Q8_0>::T>);
  set(Type::kQ2_K, ActivationFormat::kQ8K, dispatch_tile<KTile<Q2K>::T>);
  set(Type::kQ3_K, ActivationFormat::kQ8K, dispatch_tile<KTile<Q3K>::T>);
  set(Type::kQ4_K, ActivationFormat::kQ8K, dispatch_tile<KTile<Q45K<false>>::T>);
  set(Type::kQ5_K, ActivationFormat::kQ8K, dispatch_tile<KTile<Q45K<true>>::T>);
  set(Type::kQ6_K, ActivationFormat::kQ8K, dispatch_tile<KTile<Q6K>::T>);
  t.quantize_q8a = quantize_q8a;
  t.quantize_q8k = quantize_q8k;
  return t;
}

}  // namespace
}  // namespace herd::kernels
