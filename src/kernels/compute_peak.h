// The integer multiply-add rate of this machine, measured: the ceiling for prefill.
//
// Prefill is compute-bound: the blocked kernels (gemm.h) spend their time in int8 dot-product
// instructions. `herd bench` divides the prefill rate by this peak, measured in the same run on
// the same threads, so that the figure says how close to the hardware the engine runs whatever
// machine it is on (as % of measured bandwidth does for decode). The instruction is the one the
// kernels of the active ISA use: vpdpbusd on AVX-512 VNNI (64 multiply-adds per instruction);
// vpmaddubsw + vpmaddwd + vpaddd on AVX2 (32 per three instructions).
#pragma once

#include "util/thread_pool.h"

namespace herd::kernels {

struct ComputePeak {
  // Operations per second over all threads of the pool, in units of 1e9, counting a
  // multiply-add as two (as GFLOP/s figures do). 0 when the ISA has no measured loop.
  double int8_gops = 0;
  const char* instruction = "none";
};

// Runs independent dot-product instructions on every thread of `pool` for about `seconds`
// (several short rounds; the fastest round is the peak) and returns the rate.
ComputePeak measure_int8_peak(ThreadPool& pool, double seconds = 0.3);

// One thread's loop for each ISA: `iterations` rounds of the instruction sequence, returning a
// value that depends on every result (so that nothing is optimised away); adds the number of
// multiply-adds performed to *macs.
#if defined(__x86_64__) || defined(_M_X64)
namespace avx512 {
int int8_peak_loop(long iterations, double* macs);
}
namespace avx2 {
int int8_peak_loop(long iterations, double* macs);
}
#endif

}  // namespace herd::kernels
