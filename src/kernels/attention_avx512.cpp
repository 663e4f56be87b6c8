// AVX-512 loops of the attention kernel: F16C conversion of K/V rows, one accumulator register
// per query head (the head count is a template parameter so they stay in registers), masked
// loads for head sizes that are not a multiple of 16.
#include <immintrin.h>

#include <limits>

#include "kernels/attention_isa.h"
#include "kernels/exp_avx512.h"

namespace herd::kernels::avx512 {

namespace {

__mmask16 tail_mask(int n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

__m512 load_f16(const std::uint16_t* p, __mmask16 m) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

// The 16 horizontal sums of v[0..15] in one vector, by a transposing tree of 128/256-bit shuffles
// (30 shuffles and 15 adds instead of 16 separate reductions). Output lane order is
// [v0..v3, v8..v11, v4..v7, v12..v15]; callers place their inputs by kSlot to get them in order.
__m512 reduce16(const __m512* v) {
  __m512 t[8];
  for (int i = 0; i < 8; ++i) {
    t[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[i], v[i + 8], 0x44),
                         _mm512_shuffle_f32x4(v[i], v[i + 8], 0xEE));
  }
  __m512 u[4];
  for (int i = 0; i < 4; ++i) {
    u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(t[i], t[i + 4], 0x88),
                         _mm512_shuffle_f32x4(t[i], t[i + 4], 0xDD));
  }
  const __m512 w0 = _mm512_add_ps(_mm512_unpacklo_ps(u[0], u[2]), _mm512_unpackhi_ps(u[0], u[2]));
  const __m512 w1 = _mm512_add_ps(_mm512_unpacklo_ps(u[1], u[3]), _mm512_unpackhi_ps(u[1], u[3]));
  return _mm512_add_ps(_mm512_unpacklo_ps(w0, w1), _mm512_unpackhi_ps(w0, w1));
}

// Input slot of row r so that reduce16 returns the sums in row order.
constexpr int kSlot[16] = {0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15};

// Blocks of 16 rows: each K row is converted once and multiplied into NQ per-head partial-sum
// vectors, which are reduced 16 at a time.
template <int NQ>
void scores_n(const float* q, int d, const std::uint16_t* k, std::int64_t k_stride, int n,
              float scale, float* s, int s_stride) {
  const __m512 vscale = _mm512_set1_ps(scale);
  for (int i0 = 0; i0 < n; i0 += 16) {
    const int rows = n - i0 < 16 ? n - i0 : 16;
    __m512 part[NQ][16];
    for (int r = 0; r < 16; ++r) {
      __m512 acc[NQ];
      for (int h = 0; h < NQ; ++h) acc[h] = _mm512_setzero_ps();
      if (r < rows) {
        const std::uint16_t* row = k + (i0 + r) * k_stride;
        for (int j = 0; j < d; j += 16) {
          const __mmask16 m = tail_mask(d - j);
          const __m512 kv = load_f16(row + j, m);
          for (int h = 0; h < NQ; ++h) {
            acc[h] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + h * d + j), kv, acc[h]);
          }
        }
      }
      for (int h = 0; h < NQ; ++h) part[h][kSlot[r]] = acc[h];
    }
    for (int h = 0; h < NQ; ++h) {
      _mm512_mask_storeu_ps(s + h * s_stride + i0, tail_mask(rows),
                            _mm512_mul_ps(reduce16(part[h]), vscale));
    }
  }
}

// Blocked K (kernels/attention.h): lane l of a block's vector at dimension j is position
// 16 * block + l, so each query head's 16 scores build up in one register with no reduction.
template <int NQ>
void scores_blocked_n(const float* q, int d, const std::uint16_t* k, int p0, int n, float scale,
                      float* s, int s_stride) {
  const __m512 vscale = _mm512_set1_ps(scale);
  for (int b = p0 / 16; b * 16 < p0 + n; ++b) {
    const std::uint16_t* block = k + static_cast<std::int64_t>(b) * 16 * d;
    __m512 acc[NQ];
    for (int h = 0; h < NQ; ++h) acc[h] = _mm512_setzero_ps();
    for (int j = 0; j < d; ++j) {
      // Decode streams the whole cache once per token, like the weights (kernels/prefetch.h):
      // ask for the line 4 KiB ahead (one 64-byte line per two dimensions of a block).
      if (j % 2 == 0) __builtin_prefetch(block + 2048 + j * 16, 0, 3);
      const __m512 kv =
          _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + j * 16)));
      for (int h = 0; h < NQ; ++h)
        acc[h] = _mm512_fmadd_ps(_mm512_set1_ps(q[h * d + j]), kv, acc[h]);
    }
    // Lanes before p0 or from p0 + n on belong to other calls.
    const int first = b * 16;
    const int lo = first < p0 ? p0 - first : 0;
    const int hi = first + 16 > p0 + n ? p0 + n - first : 16;
    const auto keep = static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
    for (int h = 0; h < NQ; ++h) {
      // Lane l goes to s[first + l - p0]: shifted by -p0, within [0, n) for the kept lanes.
      _mm512_mask_storeu_ps(s + h * s_stride + (first - p0), keep, _mm512_mul_ps(acc[h], vscale));
    }
  }
}

// Rows are walked in runs short enough to stay in L1 while each 16-column block passes over them.
constexpr int kRun = 32;

template <int NQ>
void accumulate_n(const float* w, int w_stride, const std::uint16_t* v, std::int64_t v_stride,
                  int n, int d, float* acc) {
  for (int i0 = 0; i0 < n; i0 += kRun) {
    const int i1 = i0 + kRun < n ? i0 + kRun : n;
    for (int i = i0; i < i1; ++i) {  // the V rows of the next run (see scores_blocked_n)
      const char* ahead = reinterpret_cast<const char*>(v + (i + 32) * v_stride);
      for (int o = 0; o < 2 * d; o += 64) __builtin_prefetch(ahead + o, 0, 3);
    }
    for (int j = 0; j < d; j += 16) {
      const __mmask16 m = tail_mask(d - j);
      __m512 a[NQ];
      for (int h = 0; h < NQ; ++h) a[h] = _mm512_maskz_loadu_ps(m, acc + h * d + j);
      for (int i = i0; i < i1; ++i) {
        const __m512 x = load_f16(v + i * v_stride + j, m);
        for (int h = 0; h < NQ; ++h) {
          a[h] = _mm512_fmadd_ps(_mm512_set1_ps(w[h * w_stride + i]), x, a[h]);
        }
      }
      for (int h = 0; h < NQ; ++h) _mm512_mask_storeu_ps(acc + h * d + j, m, a[h]);
    }
  }
}

void scores(const float* q, int n_q, int d, const std::uint16_t* k, std::int64_t k_stride, int n,
            float scale, float* s, int s_stride) {
  with_head_count(n_q, [&](auto nq) { scores_n<nq()>(q, d, k, k_stride, n, scale, s, s_stride); });
}

void scores_blocked(const float* q, int n_q, int d, const std::uint16_t* k, int p0, int n,
                    float scale, float* s, int s_stride) {
  with_head_count(n_q,
                  [&](auto nq) { scores_blocked_n<nq()>(q, d, k, p0, n, scale, s, s_stride); });
}

void accumulate(const float* w, int w_stride, int n_q, const std::uint16_t* v,
                std::int64_t v_stride, int n, int d, float* acc) {
  with_head_count(n_q, [&](auto nq) { accumulate_n<nq()>(w, w_stride, v, v_stride, n, d, acc); });
}

float max(const float* x, int n) {
  __m512 m = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    m = _mm512_mask_max_ps(m, k, m, _mm512_maskz_loadu_ps(k, x + i));
  }
  return _mm512_reduce_max_ps(m);
}

float exp_sum(float* x, int n, float max) {
  const __m512 vmax = _mm512_set1_ps(max);
  __m512 sum = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vmax));
    _mm512_mask_storeu_ps(x + i, k, e);
    sum = _mm512_mask_add_ps(sum, k, sum, e);
  }
  return _mm512_reduce_add_ps(sum);
}

void to_f16(const float* x, std::uint16_t* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(static_cast<int>(n - i < 16 ? n - i : 16));
    const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(k, x + i),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_mask_storeu_epi16(y + i, k, h);
  }
}

}  // namespace

const AttentionLoops& attention_loops() {
  static constexpr AttentionLoops loops{&scores, &accumulate, &scores_blocked,
                                        &max,    &exp_sum,    &to_f16};
  return loops;
}

}  // namespace herd::kernels::avx512
