// vpdpbusd throughput loop for kernels/compute_peak.h.
#include <immintrin.h>

#include "kernels/compute_peak.h"

namespace herd::kernels::avx512 {

int int8_peak_loop(long iterations, double* macs) {
  // Twelve independent accumulators cover vpdpbusd's latency (5 cycles) on two ports.
  constexpr int kChains = 12;
  __m512i acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_epi32(i);
  const __m512i a = _mm512_set1_epi8(3);
  // Volatile-sourced so that the compiler cannot fold the products.
  volatile int seed = 1;
  __m512i b = _mm512_set1_epi8(static_cast<char>(seed));
  for (long it = 0; it < iterations; ++it) {
    asm volatile("" : "+v"(b));  // opaque to the optimiser, as real operands are
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
  }
  __m512i sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = _mm512_add_epi32(sum, acc[i]);
  *macs += static_cast<double>(iterations) * kChains * 64;
  return _mm512_reduce_add_epi32(sum);
}

}  // namespace herd::kernels::avx512
