// Software prefetch of the weight stream.
//
// Decode reads every weight byte once from DRAM. The hardware prefetchers alone keep too few
// lines in flight for a loop that also computes between loads: Q4_0 decode of a 1B model ran at
// 47-53% of the measured read bandwidth, and at 70-73% once each kernel step asked for the bytes
// it will need 4 KiB later (herd bench, 2 threads: 25 -> 37 tokens/s). Prefetching never faults,
// so reaching past the end of a row or of the tensor is harmless.
#pragma once

#include <cstddef>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace herd::kernels {

inline constexpr std::size_t kPrefetchDistance = 4096;

// Prefetches the Bytes bytes that start kPrefetchDistance after p (one request per cache line).
template <std::size_t Bytes>
inline void prefetch_ahead(const void* p) {
  const char* ahead = static_cast<const char*>(p) + kPrefetchDistance;
  for (std::size_t offset = 0; offset < Bytes; offset += 64)
    __builtin_prefetch(ahead + offset, 0, 3);
}

// A short pause in dispatch every ~2 KiB of weights a decode kernel streams.
//
// Measured on AMD Zen 5 (herd_kernel_bench stream/, one thread, 16384 x 8192 Q8_0 from DRAM):
// a kernel that issues its loads and prefetches back to back for a long row reads 22 GB/s of a
// measured 35; with one pause per 2 KiB it reads 34, and the 1B model's Q8_0 decode goes from
// 26.5 to 30.7 tokens/s (herd bench -t 1; 2 threads +7%). Rows of 2048 columns, which end
// (and call the kernel again) every 1-2 KiB, were already fast; other distances, prefetch
// hints, and one prefetch per line did not help, so the pause is what restores the stream.
// Between pauses the work runs at full speed. From cache (a model that fits in L3) the pause
// costs: Q8_0 rows of 2048 columns read 52 GB/s without it, 36 with it.
template <std::size_t StepBytes>
class StreamThrottle {
 public:
  void step() {
    if (--countdown_ == 0) {
#if defined(__x86_64__)
      _mm_pause();
#endif
      countdown_ = kSteps;
    }
  }

 private:
  static constexpr int kSteps = StepBytes >= 2048 ? 1 : static_cast<int>(2048 / StepBytes);
  int countdown_ = kSteps;
};

}  // namespace herd::kernels
