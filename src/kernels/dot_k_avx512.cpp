// 512-bit Q4_K / Q5_K / Q6_K kernels against tensor::BlockQ8_K activations (natural element order).
//
// A super-block of 256 weights is decoded once per tile into four vectors of 64 unsigned bytes
// in element order (u[v] = elements 64v .. 64v+63), so the activations load straight from the
// Q8_K block, and every block's integer sum is exact; offsets (Q6_K's q - 32) and mins (Q4_K /
// Q5_K) go through Q8_K's per-16 bsums, as in dot_x86_kquants.h.
//
// Q6_K: one 64-byte load of ql gives elements 0..63 (low nibbles) and 64..127 (high), the 32 qh
// bytes are broadcast to both halves and shifted per half. Per token, maddubs gives int16 pair
// sums and vpdpwssd multiplies them by the per-16 scale.
//
// Q4_K / Q5_K: an earlier 512-bit attempt (scales and mins unpacked with scalar code, inserted
// with vpinsrd, one vpermw scale vector per u[v], maddubs + vpdpwssd) ran no faster than the
// 256-bit kernel: zmm code issues vector uops on ports 0 and 5 only, and it spent nearly as
// many of them on scales, shuffles and register copies as on the dot itself. Here decode is
// about 20 such uops per block and each token 14:
// - 32-byte broadcast loads (load ports only) and one per-half vpsrlvw + vpand give
//   [low nibbles | high nibbles] of a 32-byte chunk, i.e. two sub-blocks in element order;
//   Q5_K's fifth bit is one vprolvd + vpternlogd per vector;
// - the 12-byte 6-bit scales/mins unpack with two pshufb and four bit ops, in every 128-bit lane;
// - per token, vpdpbusd per vector (4 products per lane fit int16), two vpackssdw, then one
//   vpmaddwd + one vpdpwssd apply all eight scales: two scale vectors instead of four;
// - accumulators start from xor-zeroed registers (no copies), d and dmin come from one 8-byte
//   vcvtph2ps, and (d * S - dmin * M) * dx costs two converts and three float ops.
// One core, L2-resident 1024 x 2048 q4_K matvec: 21.5 -> 16 TSC ticks per block (15.4 -> 19.5
// GB/s); herd bench 1B q4_k_m decode on 1 thread: 58-60% -> 85-87% of measured bandwidth.
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "kernels/avx512_lanes.h"
#include "kernels/dot.h"
#include "kernels/prefetch.h"
#include "tensor/blocks.h"

namespace herd::kernels {
namespace {

using tensor::kQKK;

using avx512::byte_index;
using avx512::half_to_float;
using avx512::word_index;

// Per-lane shift counts: lo in the first 256 bits, hi in the second.
inline __m512i halves(int lo, int hi) {
  return _mm512_inserti64x4(_mm512_set1_epi16(static_cast<short>(lo)),
                            _mm256_set1_epi16(static_cast<short>(hi)), 1);
}

// A zero register made by its own xor, which the renamer handles without an execution port;
// plain setzero is shared by the compiler and each accumulator then costs a register copy.
inline __m512i fresh_zero() {
  __m512i z;
  asm volatile("vpxord %0, %0, %0" : "=v"(z));
  return z;
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

// The NC activation rows of a tile (x_stride bytes apart) as Q8_K blocks.
template <int NC>
inline void activation_rows(const void* x, std::size_t x_stride, const tensor::BlockQ8_K* xb[NC]) {
  for (int c = 0; c < NC; ++c) {
    xb[c] = reinterpret_cast<const tensor::BlockQ8_K*>(static_cast<const std::uint8_t*>(x) +
                                                       c * x_stride);
  }
}

template <class T, int NC>
void tile_k512(std::int64_t n, const void* w, const void* x, std::size_t x_stride, float* y,
               std::int64_t ldy) {
  static const T type;
  const auto* wb = static_cast<const typename T::Block*>(w);
  const tensor::BlockQ8_K* xb[NC];
  activation_rows<NC>(x, x_stride, xb);
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

// --- Q4_K / Q5_K --------------------------------------------------------------------------------

// Per-lane 32-bit counts: lo in the first 256 bits, hi in the second.
inline __m512i halves32(int lo, int hi) {
  return _mm512_inserti64x4(_mm512_set1_epi32(lo), _mm256_set1_epi32(hi), 1);
}

struct DecodedQ45K {
  __m512i u[4];      // u[v]: sub-blocks 2v (bytes 0..31) and 2v + 1 (bytes 32..63)
  __m512i scale[2];  // int16 scales matching the words of packs(dot(u[2a]), dot(u[2a + 1]))
  __m256i min16;     // min of each 16-group, against Q8_K's bsums
  __m512 d;
  __m512 dmin;
};

template <bool kFiveBit>
struct Q45K512 {
  using Block = std::conditional_t<kFiveBit, tensor::BlockQ5_K, tensor::BlockQ4_K>;
  // vpsrlvw counts: a chunk's low nibbles are sub-block 2v, its high nibbles sub-block 2v + 1.
  const __m512i nibble_shift = halves(0, 4);
  // Sub-block s keeps its fifth bit in bit s of qh[l]; rotating each dword left by 4 - s (mod
  // 32) brings it to bit 4 of the same byte.
  const __m512i fifth_rot[4] = {halves32(4, 3), halves32(2, 1), halves32(0, 31), halves32(30, 29)};
  // Scales/mins unpack (get_scale_min_k4 in tensor/blocks.h), in every 128-bit lane: with the
  // 12 bytes as dwords A, B, C, scales 0-3 = A & 63, mins 0-3 = B & 63, scales 4-7 = (C & 15) |
  // (A >> 6) << 4, mins 4-7 = (C >> 4) | (B >> 6) << 4. low = [A, C, B, C >> 4] masked,
  // high = [0, A, 0, B] >> 2 masked.
  const __m512i pick_low =
      _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
  const __m512i pick_high =
      _mm512_broadcast_i32x4(_mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
  const __m512i low_shift = _mm512_broadcast_i32x4(_mm_setr_epi32(0, 0, 0, 4));
  const __m512i low_mask =
      _mm512_broadcast_i32x4(_mm_setr_epi32(0x3F3F3F3F, 0x0F0F0F0F, 0x3F3F3F3F, 0x0F0F0F0F));
  // packs(p, q) puts in 128-bit lane k the words of p's lane k, then q's. Lane k of dot(u[v])
  // is sub-block 2v + k / 2, so word j of lane k of pair a is in sub-block 4a + k / 2 (+ 2 for
  // j >= 4). pshufb picks that scale byte, -1 zeroes the word's high byte.
  const __m512i scale_pick[2] = {
      byte_index([](int i) { return i % 2 ? -1 : i / 32 + (i % 16 >= 8 ? 2 : 0); }),
      byte_index([](int i) { return i % 2 ? -1 : 4 + i / 32 + (i % 16 >= 8 ? 2 : 0); })};
  // Word k of min16 is the min of 16-group k, i.e. of sub-block k / 2 (bytes 8..15).
  const __m256i min_pick =
      _mm512_castsi512_si256(byte_index([](int i) { return i % 2 ? -1 : 8 + i / 4; }));

  void decode(const Block& b, DecodedQ45K& out) const {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    for (int v = 0; v < 4; ++v) {
      const __m512i q = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * v)));
      out.u[v] = _mm512_and_si512(_mm512_srlv_epi16(q, nibble_shift), low4);
    }
    if constexpr (kFiveBit) {
      const __m512i h =
          _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh)));
      const __m512i bit4 = _mm512_set1_epi8(0x10);
      for (int v = 0; v < 4; ++v) {
        // u | (rotated & 0x10)
        out.u[v] =
            _mm512_ternarylogic_epi32(out.u[v], _mm512_rolv_epi32(h, fifth_rot[v]), bit4, 0xF8);
      }
    }
    // 16 bytes from scales (the 4 past its end are the next field of the block), broadcast by
    // the load itself.
    const __m512i raw =
        _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
    const __m512i low = _mm512_and_si512(
        _mm512_srlv_epi32(_mm512_shuffle_epi8(raw, pick_low), low_shift), low_mask);
    const __m512i high = _mm512_srli_epi32(_mm512_shuffle_epi8(raw, pick_high), 2);
    // low | (high & 0x30): scales 0-7, mins 0-7 in every lane
    const __m512i sm = _mm512_ternarylogic_epi32(low, high, _mm512_set1_epi8(0x30), 0xF8);
    for (int a = 0; a < 2; ++a) out.scale[a] = _mm512_shuffle_epi8(sm, scale_pick[a]);
    out.min16 = _mm256_shuffle_epi8(_mm512_castsi512_si256(sm), min_pick);
    // d, dmin (and four scale bytes, unused) from one 8-byte load.
    const __m512 f = _mm512_castps128_ps512(
        _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(&b.d))));
    out.d = _mm512_broadcastss_ps(_mm512_castps512_ps128(f));
    out.dmin = _mm512_permutexvar_ps(_mm512_set1_epi32(1), f);
  }
};

template <bool kFiveBit, int NC>
void tile_q45k(std::int64_t n, const void* w, const void* x, std::size_t x_stride, float* y,
               std::int64_t ldy) {
  using T = Q45K512<kFiveBit>;
  static const T type;
  const auto* wb = static_cast<const typename T::Block*>(w);
  const tensor::BlockQ8_K* xb[NC];
  activation_rows<NC>(x, x_stride, xb);
  __m512 acc[NC];
  for (auto& a : acc) a = _mm512_setzero_ps();
  DecodedQ45K dq;
  for (std::int64_t i = 0; i < n / kQKK; ++i) {
    prefetch_ahead<sizeof(typename T::Block)>(wb + i);
    type.decode(wb[i], dq);
    for (int c = 0; c < NC; ++c) {
      const tensor::BlockQ8_K& xc = xb[c][i];
      // vpdpbusd sums 4 products per lane: at most 4 * 31 * 128 < 2^15, so packing to int16
      // is exact and one vpmaddwd / vpdpwssd applies the scales of two vectors at once.
      __m512i dot[4];
      for (int v = 0; v < 4; ++v) {
        dot[v] = _mm512_dpbusd_epi32(fresh_zero(), dq.u[v], _mm512_loadu_si512(xc.qs + 64 * v));
      }
      __m512i s = _mm512_madd_epi16(_mm512_packs_epi32(dot[0], dot[1]), dq.scale[0]);
      s = _mm512_dpwssd_epi32(s, _mm512_packs_epi32(dot[2], dot[3]), dq.scale[1]);
      const __m256i mins = _mm256_madd_epi16(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xc.bsums)), dq.min16);
      // (d * S - dmin * M) * dx; lanes 8..15 of the mins vector are zero.
      const __m512 t = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(_mm512_zextsi256_si512(mins)), dq.dmin,
                                        _mm512_mul_ps(_mm512_cvtepi32_ps(s), dq.d));
      acc[c] = _mm512_fmadd_ps(t, _mm512_set1_ps(xc.d), acc[c]);
    }
  }
  for (int c = 0; c < NC; ++c) y[c * ldy] = _mm512_reduce_add_ps(acc[c]);
}

template <bool kFiveBit>
void dispatch_q45k(std::int64_t n, const void* w, const void* x, std::size_t s, int nc, float* y,
                   std::int64_t ldy) {
  with_tile_width(nc, [&](auto width) { tile_q45k<kFiveBit, width()>(n, w, x, s, y, ldy); });
}

}  // namespace

void add_avx512_k_kernels(KernelTable& t) {
  using tensor::Type;
  t.by_type[static_cast<std::size_t>(Type::kQ4_K)] = {ActivationFormat::kQ8K, dispatch_q45k<false>, true};
  t.by_type[static_cast<std::size_t>(Type::kQ5_K)] = {ActivationFormat::kQ8K, dispatch_q45k<true>, true};
  t.by_type[static_cast<std::size_t>(Type::kQ6_K)] = {ActivationFormat::kQ8K, dispatch<Q6K>, true};
}

}  // namespace herd::kernels
