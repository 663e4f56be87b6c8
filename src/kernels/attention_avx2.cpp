// AVX2 + FMA + F16C loops of the attention kernel; same structure as attention_avx512.cpp with
// 8 lanes. Tails (head sizes not a multiple of 8) go through a zero-padded copy.
#include <immintrin.h>

#include <cstring>
#include <limits>

#include "kernels/attention_isa.h"

namespace herd::kernels::avx2 {

namespace {

__m256 load_f16(const std::uint16_t* p, int count) {
  if (count >= 8) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  alignas(16) std::uint16_t tmp[8] = {};
  std::memcpy(tmp, p, static_cast<std::size_t>(count) * sizeof(std::uint16_t));
  return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(tmp)));
}

__m256i lane_mask(int count) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), idx);
}

__m256 load_f32(const float* p, int count) {
  if (count >= 8) return _mm256_loadu_ps(p);
  return _mm256_maskload_ps(p, lane_mask(count));
}

void store_f32(float* p, __m256 x, int count) {
  if (count >= 8) {
    _mm256_storeu_ps(p, x);
  } else {
    _mm256_maskstore_ps(p, lane_mask(count), x);
  }
}

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int NQ>
void scores_n(const float* q, int d, const std::uint16_t* k, std::int64_t k_stride, int n,
              float scale, float* s, int s_stride) {
  for (int i = 0; i < n; ++i) {
    const std::uint16_t* row = k + i * k_stride;
    __m256 acc[NQ];
    for (int h = 0; h < NQ; ++h) acc[h] = _mm256_setzero_ps();
    for (int j = 0; j < d; j += 8) {
      const __m256 kv = load_f16(row + j, d - j);
      for (int h = 0; h < NQ; ++h) {
        acc[h] = _mm256_fmadd_ps(load_f32(q + h * d + j, d - j), kv, acc[h]);
      }
    }
    for (int h = 0; h < NQ; ++h) s[h * s_stride + i] = hsum(acc[h]) * scale;
  }
}

constexpr int kRun = 32;  // rows per pass, small enough to stay in L1 across column blocks

template <int NQ>
void accumulate_n(const float* w, int w_stride, const std::uint16_t* v, std::int64_t v_stride,
                  int n, int d, float* acc) {
  for (int i0 = 0; i0 < n; i0 += kRun) {
    const int i1 = i0 + kRun < n ? i0 + kRun : n;
    for (int j = 0; j < d; j += 8) {
      __m256 a[NQ];
      for (int h = 0; h < NQ; ++h) a[h] = load_f32(acc + h * d + j, d - j);
      for (int i = i0; i < i1; ++i) {
        const __m256 x = load_f16(v + i * v_stride + j, d - j);
        for (int h = 0; h < NQ; ++h) {
          a[h] = _mm256_fmadd_ps(_mm256_set1_ps(w[h * w_stride + i]), x, a[h]);
        }
      }
      for (int h = 0; h < NQ; ++h) store_f32(acc + h * d + j, a[h], d - j);
    }
  }
}

// Blocked K (kernels/attention.h), 8 positions of a 16-position block per pass: lane l of the
// vector at dimension j is position 16 * block + 8 * half + l.
template <int NQ>
void scores_blocked_n(const float* q, int d, const std::uint16_t* k, int p0, int n, float scale,
                      float* s, int s_stride) {
  const __m256 vscale = _mm256_set1_ps(scale);
  for (int first = p0 / 8 * 8; first < p0 + n; first += 8) {
    const std::uint16_t* block = k + static_cast<std::int64_t>(first / 16) * 16 * d + first % 16;
    __m256 acc[NQ];
    for (int h = 0; h < NQ; ++h) acc[h] = _mm256_setzero_ps();
    for (int j = 0; j < d; ++j) {
      const __m256 kv =
          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + j * 16)));
      for (int h = 0; h < NQ; ++h)
        acc[h] = _mm256_fmadd_ps(_mm256_set1_ps(q[h * d + j]), kv, acc[h]);
    }
    const int lo = first < p0 ? p0 - first : 0;
    const int hi = first + 8 > p0 + n ? p0 + n - first : 8;
    for (int h = 0; h < NQ; ++h) {
      alignas(32) float lane[8];
      _mm256_store_ps(lane, _mm256_mul_ps(acc[h], vscale));
      for (int l = lo; l < hi; ++l) s[h * s_stride + first + l - p0] = lane[l];
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
  __m256 m = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int i = 0;
  for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
  __m128 r = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  r = _mm_max_ps(r, _mm_movehl_ps(r, r));
  r = _mm_max_ss(r, _mm_movehdup_ps(r));
  float out = _mm_cvtss_f32(r);
  for (; i < n; ++i) out = x[i] > out ? x[i] : out;
  return out;
}

// exp(x) for x <= 0: x = n ln2 + r, e^r by Taylor to degree 7, 2^n built in the exponent bits
// (x is clamped so that n >= -126 stays a normal number; e^-87 is below any softmax weight).
__m256 exp_nonpositive(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504089f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i bits =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

float exp_sum(float* x, int n, float max) {
  const __m256 vmax = _mm256_set1_ps(max);
  __m256 sum = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) {
    const int count = n - i;
    const __m256 e = exp_nonpositive(_mm256_sub_ps(load_f32(x + i, count), vmax));
    store_f32(x + i, e, count);
    sum = _mm256_add_ps(sum,
                        count >= 8 ? e : _mm256_and_ps(e, _mm256_castsi256_ps(lane_mask(count))));
  }
  return hsum(sum);
}

void to_f16(const float* x, std::uint16_t* y, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h =
        _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), h);
  }
  if (i < n) {
    const int count = static_cast<int>(n - i);
    alignas(16) std::uint16_t tmp[8];
    const __m128i h =
        _mm256_cvtps_ph(load_f32(x + i, count), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_store_si128(reinterpret_cast<__m128i*>(tmp), h);
    std::memcpy(y + i, tmp, static_cast<std::size_t>(count) * sizeof(std::uint16_t));
  }
}

}  // namespace

const AttentionLoops& attention_loops() {
  static constexpr AttentionLoops loops{&scores, &accumulate, &scores_blocked, &max,    &exp_sum,
                                        &to_f16, nullptr,     nullptr,         nullptr, nullptr};
  return loops;
}

}  // namespace herd::kernels::avx2
