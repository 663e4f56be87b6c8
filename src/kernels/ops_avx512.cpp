// AVX-512 versions of the element-wise operations of ops.cpp that show up in profiles: swiglu's
// exp ran through libm one float at a time (5% of a 512-token prefill).
#include <immintrin.h>

#include <cstdint>

#include "kernels/exp_avx512.h"

namespace herd::kernels::avx512 {

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
