#include "util/memory_bandwidth.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "util/error.h"
#include "util/thread_pool.h"

namespace herd {
namespace {

// Integer addition is associative, so the compiler vectorizes this loop without -ffast-math.
// Compiled for several ISAs and chosen when the program loads: a baseline-SSE2 loop cannot
// saturate memory with one or two cores, and the measurement is the ceiling others are judged by.
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
std::uint64_t
sum_words(const std::uint64_t* words, std::int64_t n) {
  // A plain reduction: the compiler vectorises it to the clone's full vector width.
  std::uint64_t sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += words[i];
  return sum;
}

}  // namespace

MemoryBandwidth measure_memory_bandwidth(ThreadPool& pool, std::size_t bytes, int reps) {
  constexpr std::size_t kMinBytes = std::size_t{1} << 20;
  if (bytes < kMinBytes)
    fail_argument("memory bandwidth buffer of {} bytes is too small: use at least 1 MiB", bytes);
  if (reps < 1) fail_argument("memory bandwidth needs at least one repetition, got {}", reps);

  const auto n_words = static_cast<std::int64_t>(bytes / sizeof(std::uint64_t));
  // Not value-initialised: the pool's threads write it below (first touch).
  std::unique_ptr<std::uint64_t[]> buffer(new std::uint64_t[n_words]);
  std::uint64_t* words = buffer.get();
  constexpr std::int64_t kGrain = 1 << 16;
  pool.parallel_for(n_words, kGrain, [&](std::int64_t begin, std::int64_t end) {
    for (auto i = begin; i < end; ++i) words[i] = static_cast<std::uint64_t>(i);
  });

  std::vector<std::uint64_t> partial(pool.size(), 0);
  std::vector<double> rates;
  std::uint64_t checksum = 0;
  for (int r = 0; r < reps; ++r) {
    auto start = std::chrono::steady_clock::now();
    pool.run([&](int ith, int nth) {
      std::int64_t begin = n_words * ith / nth;
      std::int64_t end = n_words * (ith + 1) / nth;
      partial[ith] = sum_words(words + begin, end - begin);
    });
    auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (auto p : partial) checksum += p;
    rates.push_back(static_cast<double>(n_words * sizeof(std::uint64_t)) / std::max(seconds, 1e-9) /
                    1e9);
  }
  // The sum of 0..n-1 per repetition; checking it keeps the reads from being optimised away.
  const auto n = static_cast<std::uint64_t>(n_words);
  HERD_CHECK(checksum == static_cast<std::uint64_t>(reps) * (n * (n - 1) / 2));

  std::sort(rates.begin(), rates.end());
  MemoryBandwidth result;
  result.read_gb_per_s = rates[rates.size() / 2];
  result.bytes = static_cast<std::size_t>(n_words) * sizeof(std::uint64_t);
  result.reps = reps;
  return result;
}

}  // namespace herd
