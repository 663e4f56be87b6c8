// Sustained memory read bandwidth of this machine, measured by summing a buffer much larger than
// the last-level cache on every thread of a pool. `herd bench` divides by it ("% of bandwidth":
// decode is memory-bound, so this is the ceiling) and node profiling announces it to the cluster,
// where placement sizes each node's share of the layers by it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace herd {

class ThreadPool;

struct MemoryBandwidth {
  double read_gb_per_s = 0;  // median over repetitions, 1 GB = 1e9 bytes
  std::size_t bytes = 0;     // buffer size actually read per repetition
  int reps = 0;
};

// Reads a `bytes`-sized buffer `reps` times using every thread of `pool` and reports the median
// rate. The buffer is first written by the same threads that later read it (first touch places
// pages on their NUMA node). The default 1 GiB is several times the last-level cache of common
// CPUs (cloud Xeons have up to 260 MiB of L3: a 256 MiB buffer there measures the cache, not
// memory). Costs about bytes * (reps + 1) of memory traffic, well under a second on a desktop.
// Throws InvalidArgument when bytes < 1 MiB or reps < 1.
MemoryBandwidth measure_memory_bandwidth(ThreadPool& pool, std::size_t bytes = std::size_t{1} << 30,
                                         int reps = 5);

}  // namespace herd
