// 512-bit Q4_0 / Q8_0 kernels against BlockQ8X activations (layout in kernels/dot.h).
//
// Why a second activation layout: the 256-bit kernels of dot_x86_impl.h spend most of their
// time per 32-weight block on decoding and on the float scale step, not on the integer dot.
// Here eight weight blocks are handled per step. Their quants are gathered with one vpermt2w
// (blocks are 18 / 34 bytes, so every field is 16-bit aligned) into two vectors per four
// blocks: the first 16 elements of each block, then the last 16. The activations are stored in
// that same order, so vpdpbusd needs no shuffle, and each int32 lane belongs to one block.
// The weights' offset (Q4_0: q - 8; Q8_0: stored as w + 128 so that it is unsigned) is
// removed exactly in the integer accumulator, which starts at -offset/4 * sum(x) per lane.
// Per step and token that leaves 4 vpdpbusd, 2 scale broadcasts and 2 FMAs for 256 weights.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "kernels/avx512_lanes.h"
#include "kernels/dot.h"
#include "kernels/prefetch.h"
#include "tensor/blocks.h"

namespace herd::kernels {
namespace {

constexpr int kGroupBlocks = BlockQ8X::kBlocks;

using avx512::half_to_float;
using avx512::quantize_block;
using avx512::QuantizedBlock;
using avx512::word_index;

void quantize_q8x(const float* x, void* out, std::int64_t n) {
  const std::int64_t nb = n / 32, ng = nb / kGroupBlocks;
  auto* g = static_cast<BlockQ8X*>(out);
  for (std::int64_t i = 0; i < ng; ++i, ++g) {
    for (int k = 0; k < kGroupBlocks; ++k, x += 32) {
      const QuantizedBlock q = quantize_block(x);
      const int h = k / 4, j = k % 4;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(g->qs[h][0] + 16 * j), q.lo);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(g->qs[h][1] + 16 * j), q.hi);
      for (int l = 0; l < 4; ++l) g->neg_sum2[h][4 * j + l] = -2 * q.sum;
      g->d[k] = q.d;
    }
  }
  auto* tail = reinterpret_cast<BlockQ8A*>(g);
  for (std::int64_t i = ng * kGroupBlocks; i < nb; ++i, ++tail, x += 32) {
    const QuantizedBlock q = quantize_block(x);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(tail->qs), q.lo);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(tail->qs + 16), q.hi);
    tail->sum = q.sum;
    tail->d = q.d;
  }
}

// --- weights -------------------------------------------------------------------------------------

// Eight weight blocks as vpdpbusd operands: u[h][0] elements 0..15, u[h][1] elements 16..31 of
// blocks 4h..4h+3 (unsigned), d their scales.
struct Decoded8 {
  __m512i u[2][2];
  __m256 d;
};

struct Q4_0x {
  using Block = tensor::BlockQ4_0;        // 18 bytes = 9 words; qs at words 1..8
  static constexpr int kOffsetShift = 0;  // per-lane correction -2 * sum  (q - 8 over 32)
  const __m512i first = word_index([](int i) { return 9 * (i / 8) + 1 + i % 8; });
  // Blocks 4..7 from (bytes 64.., bytes 80..): global word g < 64 is g - 32, else g - 40 + 32.
  const __m512i second = word_index([](int i) {
    const int g = 9 * (4 + i / 8) + 1 + i % 8;
    return g < 64 ? g - 32 : g - 8;
  });
  const __m512i scales = word_index([](int i) { return i < 8 ? 9 * i : 0; });

  Decoded8 decode(const std::uint8_t* w) const {
    const __m512i l0 = _mm512_loadu_si512(w), l1 = _mm512_loadu_si512(w + 64);
    const __m512i l2 = _mm512_loadu_si512(w + 80);
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    Decoded8 out;
    const __m512i q[2] = {_mm512_permutex2var_epi16(l0, first, l1),
                          _mm512_permutex2var_epi16(l1, second, l2)};
    for (int h = 0; h < 2; ++h) {
      out.u[h][0] = _mm512_and_si512(q[h], low4);
      out.u[h][1] = _mm512_and_si512(_mm512_srli_epi16(q[h], 4), low4);
    }
    out.d = _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutex2var_epi16(l0, scales, l1)));
    return out;
  }
  static int tail_dot(const Block& b, const BlockQ8A& x) {
    int s = 0;
    for (int j = 0; j < 16; ++j) {
      s += ((b.qs[j] & 0x0F) - 8) * x.qs[j] + ((b.qs[j] >> 4) - 8) * x.qs[j + 16];
    }
    return s;
  }
};

struct Q8_0x {
  using Block = tensor::BlockQ8_0;        // 34 bytes = 17 words; qs at words 1..16
  static constexpr int kOffsetShift = 4;  // -32 * sum per lane (w + 128 over 32)
  const __m512i first = word_index([](int i) { return 17 * (i / 8) + 1 + i % 8; });
  // From (bytes 8.., bytes 72..): global word g is index g - 4.
  const __m512i second = word_index([](int i) { return 17 * (i / 8) + 9 + i % 8 - 4; });
  const __m512i scales = word_index([](int i) { return i < 4 ? 17 * i : 0; });

  Decoded8 decode(const std::uint8_t* w) const {
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    Decoded8 out;
    __m128i d[2];
    for (int h = 0; h < 2; ++h, w += 4 * sizeof(Block)) {
      const __m512i a = _mm512_loadu_si512(w), b = _mm512_loadu_si512(w + 64);
      const __m512i c = _mm512_loadu_si512(w + 8), e = _mm512_loadu_si512(w + 72);
      out.u[h][0] = _mm512_xor_si512(_mm512_permutex2var_epi16(a, first, b), flip);
      out.u[h][1] = _mm512_xor_si512(_mm512_permutex2var_epi16(c, second, e), flip);
      d[h] = _mm512_castsi512_si128(_mm512_permutex2var_epi16(a, scales, b));
    }
    out.d = _mm256_cvtph_ps(_mm_unpacklo_epi64(d[0], d[1]));
    return out;
  }
  static int tail_dot(const Block& b, const BlockQ8A& x) {
    int s = 0;
    for (int j = 0; j < 32; ++j) s += b.qs[j] * x.qs[j];
    return s;
  }
};

template <class T, int NC>
void tile_q32x(std::int64_t n, const void* w, const void* x, std::size_t x_stride, float* y,
               std::int64_t ldy) {
  static const T type;
  const auto* wp = static_cast<const std::uint8_t*>(w);
  const std::int64_t nb = n / 32, ng = nb / kGroupBlocks;
  const BlockQ8X* xg[NC];
  for (int c = 0; c < NC; ++c) {
    xg[c] = reinterpret_cast<const BlockQ8X*>(static_cast<const std::uint8_t*>(x) + c * x_stride);
  }
  // Lane l of the expanded scales is block l / 4 (first half) or 4 + l / 4 (second half).
  const __m512i spread0 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  const __m512i spread1 = _mm512_add_epi32(spread0, _mm512_set1_epi32(4));
  __m512 acc[NC];
  for (auto& a : acc) a = _mm512_setzero_ps();
  StreamThrottle<kGroupBlocks * sizeof(typename T::Block)> throttle;
  for (std::int64_t g = 0; g < ng; ++g, wp += kGroupBlocks * sizeof(typename T::Block)) {
    prefetch_ahead<kGroupBlocks * sizeof(typename T::Block)>(wp);
    if constexpr (NC == 1) throttle.step();  // decode only: a tile of tokens is compute-bound
    const Decoded8 dw = type.decode(wp);
    for (int c = 0; c < NC; ++c) {
      const BlockQ8X& xc = xg[c][g];
      __m512i p[2];
      for (int h = 0; h < 2; ++h) {
        p[h] = _mm512_slli_epi32(_mm512_loadu_si512(xc.neg_sum2[h]), T::kOffsetShift);
        p[h] = _mm512_dpbusd_epi32(p[h], dw.u[h][0], _mm512_loadu_si512(xc.qs[h][0]));
        p[h] = _mm512_dpbusd_epi32(p[h], dw.u[h][1], _mm512_loadu_si512(xc.qs[h][1]));
      }
      const __m512 s = _mm512_castps256_ps512(_mm256_mul_ps(dw.d, _mm256_loadu_ps(xc.d)));
      acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p[0]), _mm512_permutexvar_ps(spread0, s), acc[c]);
      acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p[1]), _mm512_permutexvar_ps(spread1, s), acc[c]);
    }
  }
  const auto* wt = reinterpret_cast<const typename T::Block*>(wp);
  for (int c = 0; c < NC; ++c) {
    float sum = _mm512_reduce_add_ps(acc[c]);
    const auto* xt = reinterpret_cast<const BlockQ8A*>(xg[c] + ng);
    for (std::int64_t i = 0; i < nb - ng * kGroupBlocks; ++i) {
      sum += static_cast<float>(T::tail_dot(wt[i], xt[i])) * (half_to_float(wt[i].d) * xt[i].d);
    }
    y[c * ldy] = sum;
  }
}

template <class T>
void dispatch(std::int64_t n, const void* w, const void* x, std::size_t s, int nc, float* y,
              std::int64_t ldy) {
  with_tile_width(nc, [&](auto width) { tile_q32x<T, width()>(n, w, x, s, y, ldy); });
}

}  // namespace

void add_avx512_q32_kernels(KernelTable& t) {
  using tensor::Type;
  t.by_type[static_cast<std::size_t>(Type::kQ4_0)] = {ActivationFormat::kQ8X, dispatch<Q4_0x>, true};
  t.by_type[static_cast<std::size_t>(Type::kQ8_0)] = {ActivationFormat::kQ8X, dispatch<Q8_0x>, true};
  t.quantize_q8x = quantize_q8x;
}

}  // namespace herd::kernels
