// The AVX2 dot-product sequence (as the AVX2 tile kernels use it) for kernels/compute_peak.h.
#include <immintrin.h>

#include "kernels/compute_peak.h"

namespace herd::kernels::avx2 {

int int8_peak_loop(long iterations, double* macs) {
  // u8 x s8 pairs summed to int16 (vpmaddubsw), int16 pairs to int32 (vpmaddwd by ones), then
  // accumulated (vpaddd): 32 multiply-adds per three instructions.
  constexpr int kChains = 8;
  __m256i acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_epi32(i);
  const __m256i a = _mm256_set1_epi8(3);
  const __m256i ones = _mm256_set1_epi16(1);
  volatile int seed = 1;
  __m256i b = _mm256_set1_epi8(static_cast<char>(seed));
  for (long it = 0; it < iterations; ++it) {
    // Opaque to the optimiser: otherwise the loop-invariant products are hoisted.
    asm volatile("" : "+x"(b));
    for (int i = 0; i < kChains; ++i) {
      const __m256i pairs = _mm256_maddubs_epi16(a, b);
      acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(pairs, ones));
    }
  }
  __m256i sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = _mm256_add_epi32(sum, acc[i]);
  *macs += static_cast<double>(iterations) * kChains * 32;
  alignas(32) int lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), sum);
  int total = 0;
  for (int v : lanes) total += v;
  return total;
}

}  // namespace herd::kernels::avx2
