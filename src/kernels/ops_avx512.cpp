// AVX-512 versions of the element-wise operations of ops.cpp that show up in profiles: swiglu's
// exp ran through libm one float at a time (5% of a 512-token prefill); rms_norm's sum of
// squares was one chain of dependent double adds.
#include <immintrin.h>

#include <cstdint>

#include "kernels/exp_avx512.h"

namespace herd::kernels::avx512 {

// As ops.cpp's portable sum_squares, bit for bit: lane l of the vector is its partial sum l.
double sum_squares(const float* x, std::int64_t n) {
  __m512d acc = _mm512_setzero_pd();
  for (std::int64_t i = 0; i < n; i += 8) {
    const __mmask8 k = n - i >= 8 ? __mmask8(0xFF) : __mmask8((1u << (n - i)) - 1);
    const __m512d v = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(k, x + i));
    acc = _mm512_fmadd_pd(v, v, acc);
  }
  alignas(64) double part[8];
  _mm512_store_pd(part, acc);
  double sum = 0.0;
  for (double p : part) sum += p;
  return sum;
}

void swiglu(const float* gate, const float* up, float* out, std::int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m512 g = _mm512_maskz_loadu_ps(k, gate + i);
    const __m512 u = _mm512_maskz_loadu_ps(k, up + i);
    // silu(g) = g / (1 + e^-g); e^-g = +inf for very negative g gives -0, as the scalar code.
    const __m512 silu =
        _mm512_div_ps(g, _mm512_add_ps(one, exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_mask_storeu_ps(out + i, k, _mm512_mul_ps(silu, u));
  }
}

}  // namespace herd::kernels::avx512
