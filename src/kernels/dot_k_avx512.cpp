// 512-bit Q6_K kernel against tensor::BlockQ8_K activations (natural element order).
//
// A super-block of 256 weights is decoded once per tile into four vectors of 64 unsigned bytes
// in element order (u[v] = elements 64v .. 64v+63), so the activations load straight from the
// Q8_K block: one 64-byte load of ql gives elements 0..63 (low nibbles) and 64..127 (high), the
// 32 qh bytes are broadcast to both halves and shifted per half. Per token: maddubs gives int16
// pair sums, vpdpwssd multiplies them by the per-group scale and accumulates in int32, so every
// block's sum is exact; the offset (q - 32) goes through Q8_K's per-16 bsums, as in
// dot_x86_kquants.h.
//
// Q4_K was tried the same way (each 32-byte chunk broadcast, upper half shifted a nibble, scales
// by vpermw) and measured no faster than the 256-bit kernel (about 15 GB/s per core for one
// token either way; zmm work runs on two ports, ymm on three), so it stays 256-bit.
#include <immintrin.h>

#include "kernels/dot.h"
#include "kernels/prefetch.h"
#include "tensor/blocks.h"

namespace herd::kernels {
namespace {

using tensor::kQKK;

inline float half_to_float(std::uint16_t h) {
  return _cvtsh_ss(h);
}

// 16-bit lane indices for vpermw: lane i takes word f(i).
template <class F>
inline __m512i word_index(F f) {
  alignas(64) std::int16_t idx[32];
  for (int i = 0; i < 32; ++i) idx[i] = static_cast<std::int16_t>(f(i));
  return _mm512_load_si512(idx);
}

// Per-lane shift counts: lo in the first 256 bits, hi in the second.
inline __m512i halves(int lo, int hi) {
  return _mm512_inserti64x4(_mm512_set1_epi16(static_cast<short>(lo)),
                            _mm256_set1_epi16(static_cast<short>(hi)), 1);
}

struct DecodedK512 {
  __m512i u[4];
  __m512i scale[4];  // int16 scale of each maddubs pair lane of u[v]
  __m256i min16;     // per-16-group scale, against Q8_K's bsums
  float d;
  float dmin;
};

struct Q6K {
  using Block = tensor::BlockQ6_K;
  static constexpr int kOffsetShift = 5;  // q - 32
  static constexpr bool kHasMin = false;
  // u[v] spans 16-groups 4v .. 4v+3, eight pair lanes each.
  const __m512i pick[4] = {
      word_index([](int i) { return i / 8; }), word_index([](int i) { return 4 + i / 8; }),
      word_index([](int i) { return 8 + i / 8; }), word_index([](int i) { return 12 + i / 8; })};
  // Bits 4-5 of elements l, l + 32 are qh bits 0-1, 2-3; of l + 64, l + 96 bits 4-5, 6-7.
  const __m512i high_lo = halves(4, 2);  // shift left
  const __m512i high_hi = halves(0, 2);  // shift right

  void decode(const Block& b, DecodedK512& out) const {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    const __m512i bits45 = _mm512_set1_epi8(0x30);
    for (int h = 0; h < 2; ++h) {
      const __m512i l = _mm512_loadu_si512(b.ql + 64 * h);
      const __m512i q = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h)));
      out.u[2 * h] = _mm512_or_si512(_mm512_and_si512(l, low4),
                                     _mm512_and_si512(_mm512_sllv_epi16(q, high_lo), bits45));
      out.u[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), low4),
                                         _mm512_and_si512(_mm512_srlv_epi16(q, high_hi), bits45));
    }
    const __m256i s16 =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
    const __m512i s512 = _mm512_castsi256_si512(s16);
    for (int v = 0; v < 4; ++v) out.scale[v] = _mm512_permutexvar_epi16(pick[v], s512);
    out.min16 = s16;
    out.d = half_to_float(b.d);
    out.dmin = 0.0f;
  }
};

template <class T, int NC>
void tile_k512(std::int64_t n, const void* w, const void* x, std::size_t x_stride, float* y,
               std::int64_t ldy) {
  static const T type;
  const auto* wb = static_cast<const typename T::Block*>(w);
  const tensor::BlockQ8_K* xb[NC];
  for (int c = 0; c < NC; ++c) {
    xb[c] = reinterpret_cast<const tensor::BlockQ8_K*>(static_cast<const std::uint8_t*>(x) +
                                                       c * x_stride);
  }
  __m512 acc[NC];
  __m256 min_acc[NC];
  for (auto& a : acc) a = _mm512_setzero_ps();
  for (auto& a : min_acc) a = _mm256_setzero_ps();
  DecodedK512 dq;
  for (std::int64_t i = 0; i < n / kQKK; ++i) {
    prefetch_ahead<sizeof(typename T::Block)>(wb + i);
    type.decode(wb[i], dq);
    // Scales as d * (isum * dx): dx broadcasts straight from memory, no scalar product first.
    const __m512 d = _mm512_set1_ps(dq.d);
    const __m256 dmin = _mm256_set1_ps(dq.dmin);
    for (int c = 0; c < NC; ++c) {
      const tensor::BlockQ8_K& xc = xb[c][i];
      // Two chains to shorten the dependency on the integer accumulators.
      __m512i s[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
      for (int v = 0; v < 4; ++v) {
        const __m512i p = _mm512_maddubs_epi16(dq.u[v], _mm512_loadu_si512(xc.qs + 64 * v));
        s[v & 1] = _mm512_dpwssd_epi32(s[v & 1], p, dq.scale[v]);
      }
      __m512i isum = _mm512_add_epi32(s[0], s[1]);
      const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xc.bsums));
      const __m256i group = _mm256_madd_epi16(bsums, dq.min16);
      if constexpr (T::kOffsetShift >= 0) {
        isum = _mm512_sub_epi32(isum,
                                _mm512_zextsi256_si512(_mm256_slli_epi32(group, T::kOffsetShift)));
      }
      acc[c] =
          _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(xc.d)), d, acc[c]);
      if constexpr (T::kHasMin) {
        min_acc[c] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(group), _mm256_set1_ps(xc.d)),
                                     dmin, min_acc[c]);
      }
    }
  }
  for (int c = 0; c < NC; ++c) {
    const __m256 m = min_acc[c];
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    y[c * ldy] = _mm512_reduce_add_ps(acc[c]) - _mm_cvtss_f32(s);
  }
}

template <class T>
void dispatch(std::int64_t n, const void* w, const void* x, std::size_t s, int nc, float* y,
              std::int64_t ldy) {
  with_tile_width(nc, [&](auto width) { tile_k512<T, width()>(n, w, x, s, y, ldy); });
}

}  // namespace

void add_avx512_k_kernels(KernelTable& t) {
  using tensor::Type;
  t.by_type[static_cast<std::size_t>(Type::kQ6_K)] = {ActivationFormat::kQ8K, dispatch<Q6K>};
}

}  // namespace herd::kernels
