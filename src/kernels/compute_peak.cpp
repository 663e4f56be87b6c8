// Chooses and times the int8 peak loop of the active ISA (see compute_peak.h).
#include "kernels/compute_peak.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "util/cpu_features.h"

namespace herd::kernels {
namespace {

using PeakLoop = int (*)(long, double*);

PeakLoop loop_for(Isa isa, const char** instruction) {
#if defined(__x86_64__) || defined(_M_X64)
  if (isa == Isa::kAvx512) {  // implies VNNI (util/cpu_features.cpp)
    *instruction = "vpdpbusd (AVX-512 VNNI)";
    return avx512::int8_peak_loop;
  }
  if (isa == Isa::kAvx2) {
    *instruction = "vpmaddubsw+vpmaddwd (AVX2)";
    return avx2::int8_peak_loop;
  }
#endif
  (void)isa;
  *instruction = "none";
  return nullptr;
}

}  // namespace

ComputePeak measure_int8_peak(ThreadPool& pool, double seconds) {
  ComputePeak peak;
  const PeakLoop loop = loop_for(active_isa(), &peak.instruction);
  if (!loop) return peak;
  // A first short round sizes the rounds (~20 ms each) and wakes the cores up to speed.
  constexpr int kRounds = 8;
  long iterations = 1 << 14;
  std::vector<double> macs(pool.size());
  std::atomic<int> sink{0};
  auto round = [&](long n) {
    std::fill(macs.begin(), macs.end(), 0.0);
    const auto t0 = std::chrono::steady_clock::now();
    pool.run([&](int slot, int) { sink += loop(n, &macs[slot]); });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double total = 0;
    for (double m : macs) total += m;
    return std::pair{total, std::max(s, 1e-9)};
  };
  for (;;) {
    auto [total, s] = round(iterations);
    if (s > seconds / kRounds / 4 || iterations > (1L << 30)) {
      iterations = static_cast<long>(static_cast<double>(iterations) * (seconds / kRounds) / s);
      break;
    }
    iterations *= 4;
  }
  iterations = std::max(iterations, 1L);
  for (int r = 0; r < kRounds; ++r) {
    auto [total, s] = round(iterations);
    peak.int8_gops = std::max(peak.int8_gops, 2.0 * total / s / 1e9);
  }
  return peak;
}

}  // namespace herd::kernels
