// Software prefetch of the weight stream.
//
// Decode reads every weight byte once from DRAM. The hardware prefetchers alone keep too few
// lines in flight for a loop that also computes between loads: Q4_0 decode of a 1B model ran at
// 47-53% of the measured read bandwidth, and at 70-73% once each kernel step asked for the bytes
// it will need 4 KiB later (herd bench, 2 threads: 25 -> 37 tokens/s). Prefetching never faults,
// so reaching past the end of a row or of the tensor is harmless.
#pragma once

#include <cstddef>

namespace herd::kernels {

inline constexpr std::size_t kPrefetchDistance = 4096;

// Prefetches the Bytes bytes that start kPrefetchDistance after p (one request per cache line).
template <std::size_t Bytes>
inline void prefetch_ahead(const void* p) {
  const char* ahead = static_cast<const char*>(p) + kPrefetchDistance;
  for (std::size_t offset = 0; offset < Bytes; offset += 64)
    __builtin_prefetch(ahead + offset, 0, 3);
}

}  // namespace herd::kernels
