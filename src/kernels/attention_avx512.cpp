// AVX-512 loops of the attention kernel: F16C conversion of K/V rows, one accumulator register
// per query head (the head count is a template parameter so they stay in registers), masked
// loads for head sizes that are not a multiple of 16. The wide prefill loops work on K/V tiles
// widened to f32 once per item, with register tiles of 6 rows x 64 scores or 6 rows x 64 output
// columns (24 accumulators), and a base-2 softmax whose running sums stay in vectors.
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

// Wide prefill loops (attention_isa.h). K/V are already f32, so the FMA ports only multiply: the
// loads of K/V vectors and of broadcast weights go to the load ports.

// Query rows and 16-position blocks per register tile of scores_wide: RxB accumulators.
constexpr int kScoreRows = 6;
constexpr int kScoreBlocks = 4;

// Positions that rows [r0, r0 + rows) need of a tile of n (the last row sees the most).
int needed(int r0, int rows, int n, int visible0, int heads) {
  const int v = visible0 + (r0 + rows - 1) / heads;
  return v < 0 ? 0 : (v > n ? n : v);
}

template <int R, int B>
void scores_tile(const float* q, int d, const float* kf, float scale, float* s, int s_stride) {
  // Flat array, loops unrolled: the accumulators stay in registers (see accumulate_tile).
  __m512 acc[R * B];
#pragma GCC unroll 32
  for (int t = 0; t < R * B; ++t) acc[t] = _mm512_setzero_ps();
  for (int j = 0; j < d; ++j) {
    __m512 kv[B];
#pragma GCC unroll 4
    for (int b = 0; b < B; ++b)
      kv[b] = _mm512_loadu_ps(kf + (static_cast<std::int64_t>(b) * d + j) * 16);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 qb = _mm512_set1_ps(q[r * d + j]);
#pragma GCC unroll 4
      for (int b = 0; b < B; ++b) acc[r * B + b] = _mm512_fmadd_ps(qb, kv[b], acc[r * B + b]);
    }
  }
  const __m512 vscale = _mm512_set1_ps(scale);
#pragma GCC unroll 32
  for (int t = 0; t < R * B; ++t)
    _mm512_storeu_ps(s + (t / B) * s_stride + (t % B) * 16, _mm512_mul_ps(acc[t], vscale));
}

void scores_wide(const float* q, int n_q, int d, const float* kf, int nb, int visible0, int heads,
                 float scale, float* s, int s_stride) {
  for (int r0 = 0; r0 < n_q; r0 += kScoreRows) {
    with_static_count<kScoreRows>(n_q - r0, [&](auto rows) {
      constexpr int R = rows();
      const int blocks = (needed(r0, R, nb * 16, visible0, heads) + 15) / 16;
      const float* qr = q + static_cast<std::int64_t>(r0) * d;
      float* sr = s + static_cast<std::int64_t>(r0) * s_stride;
      int b = 0;
      for (; b + kScoreBlocks <= blocks; b += kScoreBlocks) {
        scores_tile<R, kScoreBlocks>(qr, d, kf + static_cast<std::int64_t>(b) * 16 * d, scale,
                                     sr + b * 16, s_stride);
      }
      if (b < blocks) {
        with_static_count<kScoreBlocks - 1>(blocks - b, [&](auto tail) {
          scores_tile<R, tail()>(qr, d, kf + static_cast<std::int64_t>(b) * 16 * d, scale,
                                 sr + b * 16, s_stride);
        });
      }
    });
  }
}

// Query rows and 16-column vectors per register tile of accumulate_wide: RxC accumulators.
constexpr int kAccRows = 6;
constexpr int kAccCols = 4;

__mmask16 lane_mask(int n) {
  if (n <= 0) return 0;
  return tail_mask(n);
}

template <int R>
void accumulate_tile(const float* w, int w_stride, const float* vf, int v_stride, int n,
                     const __mmask16* m, float* acc, int acc_stride) {
  // One flat array, every loop over it unrolled: GCC then keeps all R x C accumulators in
  // registers (a 2-D array was spilled to the stack on every position).
  constexpr int C = kAccCols;
  __m512 a[R * C];
#pragma GCC unroll 32
  for (int t = 0; t < R * C; ++t)
    a[t] = _mm512_maskz_loadu_ps(m[t % C], acc + (t / C) * acc_stride + (t % C) * 16);
  for (int i = 0; i < n; ++i) {
    __m512 x[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c)
      x[c] = _mm512_maskz_loadu_ps(m[c], vf + static_cast<std::int64_t>(i) * v_stride + c * 16);
#pragma GCC unroll 32
    for (int t = 0; t < R * C; ++t)
      a[t] = _mm512_fmadd_ps(_mm512_set1_ps(w[(t / C) * w_stride + i]), x[t % C], a[t]);
  }
#pragma GCC unroll 32
  for (int t = 0; t < R * C; ++t)
    _mm512_mask_storeu_ps(acc + (t / C) * acc_stride + (t % C) * 16, m[t % C], a[t]);
}

void accumulate_wide(const float* w, int w_stride, int n_q, const float* vf, int v_stride, int n,
                     int visible0, int heads, int d, float* acc, int acc_stride) {
  for (int j0 = 0; j0 < d; j0 += 16 * kAccCols) {
    __mmask16 m[kAccCols];
    for (int c = 0; c < kAccCols; ++c) m[c] = lane_mask(d - j0 - 16 * c);
    for (int r0 = 0; r0 < n_q; r0 += kAccRows) {
      with_static_count<kAccRows>(n_q - r0, [&](auto rows) {
        accumulate_tile<rows()>(w + static_cast<std::int64_t>(r0) * w_stride, w_stride, vf + j0,
                                v_stride, needed(r0, rows(), n, visible0, heads), m,
                                acc + static_cast<std::int64_t>(r0) * acc_stride + j0, acc_stride);
      });
    }
  }
}

// 2^t to about 1 ulp for the softmax weights, whose exponents t = s - max are <= 0 (cheaper than
// exp_ps: the scores already carry the factor log2(e), and no clamping is needed because any
// very negative t scales to 0): t = floor(t) + f with f in [0, 1) from vreduceps, 2^f by a
// degree-6 polynomial (interpolation at the Chebyshev nodes of [0, 1], relative error 2.5e-9),
// times 2^floor(t) by vscalefps (which floors its exponent operand itself). Lanes outside
// `keep` come out 0.
__m512 exp2_weights(__mmask16 keep, __m512 t) {
  const __m512 f = _mm512_reduce_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 p = _mm512_set1_ps(2.1865784776254515e-04f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.2391331837500745e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6841863099938440e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5480630196887720e-02f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4023045441226250e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314693275887050e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0000000025307452f));
  return _mm512_maskz_scalef_ps(keep, p, t);
}

// The maximum of x's lanes in every lane.
__m512 broadcast_max(__m512 x) {
  x = _mm512_max_ps(x, _mm512_shuffle_f32x4(x, x, 0x4E));
  x = _mm512_max_ps(x, _mm512_shuffle_f32x4(x, x, 0xB1));
  x = _mm512_max_ps(x, _mm512_permute_ps(x, 0x4E));
  return _mm512_max_ps(x, _mm512_permute_ps(x, 0xB1));
}

// The new running max of a row (all lanes) from its old one and the maximum of its scores, and
// the rescaling of the row's sum and accumulators when it grew.
inline __attribute__((always_inline)) __m512 update_max(__m512 tile_max, float* m, __m512* lsum,
                                                        float* acc, int dv) {
  const float m_old = *m;
  const __m512 m_new = _mm512_max_ps(broadcast_max(tile_max), _mm512_set1_ps(m_old));
  const float m_new_s = _mm512_cvtss_f32(m_new);
  if (m_new_s > m_old && m_old > -std::numeric_limits<float>::infinity()) {
    const __m512 c = exp2_weights(0xFFFF, _mm512_sub_ps(_mm512_set1_ps(m_old), m_new));
    *lsum = _mm512_mul_ps(*lsum, c);
    for (int j = 0; j < dv; j += 16) {
      const __mmask16 k = tail_mask(dv - j);
      _mm512_mask_storeu_ps(acc + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, acc + j), c));
    }
  }
  *m = m_new_s;
  return m_new;
}

// A row that sees all of a tile of V whole vectors: held in registers from max to store.
template <int V>
void softmax_row_full(float* x, float* m, __m512* lsum, float* acc, int dv) {
  __m512 v[V];
#pragma GCC unroll 8
  for (int i = 0; i < V; ++i) v[i] = _mm512_loadu_ps(x + 16 * i);
  __m512 mx = v[0];
#pragma GCC unroll 8
  for (int i = 1; i < V; ++i) mx = _mm512_max_ps(mx, v[i]);
  const __m512 vmax = update_max(mx, m, lsum, acc, dv);
  __m512 sum = *lsum;
#pragma GCC unroll 8
  for (int i = 0; i < V; ++i) {
    const __m512 e = exp2_weights(0xFFFF, _mm512_sub_ps(v[i], vmax));
    _mm512_storeu_ps(x + 16 * i, e);
    sum = _mm512_add_ps(sum, e);
  }
  *lsum = sum;
}

// Any row: the first `visible` of n scores, masked.
void softmax_row(float* x, int n, int visible, float* m, __m512* lsum, float* acc, int dv) {
  if (visible > 0) {
    __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (int i = 0; i < visible; i += 16) {
      const __mmask16 k = tail_mask(visible - i);
      mx = _mm512_mask_max_ps(mx, k, mx, _mm512_maskz_loadu_ps(k, x + i));
    }
    const __m512 vmax = update_max(mx, m, lsum, acc, dv);
    __m512 sum = *lsum;
    for (int i = 0; i < visible; i += 16) {
      const __mmask16 seen = tail_mask(visible - i);
      const __m512 e = exp2_weights(seen, _mm512_sub_ps(_mm512_maskz_loadu_ps(seen, x + i), vmax));
      _mm512_mask_storeu_ps(x + i, tail_mask(n - i), e);
      sum = _mm512_add_ps(sum, e);
    }
    *lsum = sum;
  }
  // Weights up to n: 0 past the visible ones (accumulate reads whole register tiles).
  for (int i = (visible + 15) / 16 * 16; i < n; i += 16) {
    _mm512_mask_storeu_ps(x + i, tail_mask(n - i), _mm512_setzero_ps());
  }
}

// Rows that see all of a tile of up to this many whole vectors take the register path.
constexpr int kFullVectors = 8;

void softmax_wide(float* s, int s_stride, int n_q, int n, int visible0, int heads, float* m,
                  float* l, float* acc, int acc_stride, int dv) {
  int token_visible = visible0;  // of row r's token
  for (int r = 0, h = 0; r < n_q; ++r) {
    float* x = s + static_cast<std::int64_t>(r) * s_stride;
    float* row_acc = acc + static_cast<std::int64_t>(r) * acc_stride;
    __m512 lsum = _mm512_loadu_ps(l + 16 * r);
    const int visible = token_visible < 0 ? 0 : (token_visible > n ? n : token_visible);
    if (visible == n && n % 16 == 0 && n <= 16 * kFullVectors) {
      with_static_count<kFullVectors>(
          n / 16, [&](auto vectors) { softmax_row_full<vectors()>(x, m + r, &lsum, row_acc, dv); });
    } else {
      softmax_row(x, n, visible, m + r, &lsum, row_acc, dv);
    }
    _mm512_storeu_ps(l + 16 * r, lsum);
    if (++h == heads) {
      h = 0;
      ++token_visible;
    }
  }
}

void to_f32(const std::uint16_t* x, float* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(static_cast<int>(n - i < 16 ? n - i : 16));
    _mm512_mask_storeu_ps(y + i, k, load_f16(x + i, k));
  }
}

}  // namespace

const AttentionLoops& attention_loops() {
  static constexpr AttentionLoops loops{
      &scores, &accumulate, &scores_blocked, &max,          &exp_sum,
      &to_f16, &to_f32,     &scores_wide,    &softmax_wide, &accumulate_wide};
  return loops;
}

}  // namespace herd::kernels::avx512
