// Matrix-vector (decode) and matrix-matrix (prefill) products per weight type.
// Counters: GB/s of weight bytes streamed per call, GFLOP/s (2 * rows * cols * tokens).
// HERD_ISA=scalar|avx2|avx512 picks the kernels; HERD_BENCH_THREADS the pool size (default: all
// cores). rows/...: one thread calling matmul_rows (per-core kernel speed, CPU-time rates).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "kernels/matmul.h"
#include "product_bench.h"
#include "tensor/type.h"
#include "util/thread_pool.h"

namespace herd::kernels {
namespace {

using tensor::Type;

ThreadPool& pool() {
  static ThreadPool p([] {
    const char* env = std::getenv("HERD_BENCH_THREADS");
    return env ? std::atoi(env) : 0;
  }());
  return p;
}

void run(benchmark::State& state, Type type, std::int64_t rows, std::int64_t cols,
         std::int64_t tokens) {
  time_product(state, type, rows, cols, tokens, [&](const Matrix& w, const float* x, float* y) {
    matmul(w, x, tokens, cols, y, rows, pool());
  });
  state.counters["threads"] = pool().size();
}

// One thread, no pool: the kernels' own speed per core. Rates use CPU time, which a busy
// machine (other processes taking the core) distorts less than wall time.
void run_rows(benchmark::State& state, Type type, std::int64_t rows, std::int64_t cols,
              std::int64_t tokens) {
  time_product(state, type, rows, cols, tokens, [&](const Matrix& w, const float* x, float* y) {
    matmul_rows(w, x, tokens, cols, y, rows, 0, rows);
  });
}

const bool kRegistered = [] {
  const Type types[] = {Type::kF32,  Type::kF16,  Type::kBF16, Type::kQ8_0, Type::kQ4_0,
                        Type::kQ4_1, Type::kQ5_0, Type::kQ5_1, Type::kQ2_K, Type::kQ3_K,
                        Type::kQ4_K, Type::kQ5_K, Type::kQ6_K};
  const std::int64_t shapes[][2] = {{2048, 2048}, {8192, 2048}};
  for (Type t : types) {
    for (const auto& s : shapes) {
      const std::string shape = std::to_string(s[0]) + "x" + std::to_string(s[1]);
      const std::string name(tensor::type_name(t));
      benchmark::RegisterBenchmark(("matvec/" + name + "/" + shape).c_str(),
                                   [=](benchmark::State& st) { run(st, t, s[0], s[1], 1); })
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("matmul/" + name + "/" + shape + "/t64").c_str(),
                                   [=](benchmark::State& st) { run(st, t, s[0], s[1], 64); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  // 1024 x 2048 stays in L2 (compute-bound); 8192 x 2048 streams from memory.
  for (Type t : {Type::kQ8_0, Type::kQ4_0, Type::kQ4_K, Type::kQ6_K}) {
    for (std::int64_t rows : {1024, 8192}) {
      for (std::int64_t tokens : {1, 8}) {
        const std::string name = "rows/" + std::string(tensor::type_name(t)) + "/" +
                                 std::to_string(rows) + "x2048/t" + std::to_string(tokens);
        benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) {
          run_rows(st, t, rows, 2048, tokens);
        })->Unit(benchmark::kMicrosecond);
      }
    }
  }
  // Q4_K / Q5_K decode (the 512-bit kernels of dot_k_avx512.cpp), and 32768 x 2048 (38 MB of
  // q4_K): a matrix several times larger than L2 that exercises the prefetch distance.
  for (Type t : {Type::kQ4_K, Type::kQ5_K}) {
    for (std::int64_t rows : {1024, 8192, 32768}) {
      for (std::int64_t tokens : {1, 8}) {
        if (t == Type::kQ4_K && rows != 32768) continue;  // registered above
        const std::string name = "rows/" + std::string(tensor::type_name(t)) + "/" +
                                 std::to_string(rows) + "x2048/t" + std::to_string(tokens);
        benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) {
          run_rows(st, t, rows, 2048, tokens);
        })->Unit(benchmark::kMicrosecond);
      }
    }
  }
  // Decode from DRAM: 75 MB matrices, larger than any L3 here, with short (2048) and long (8192)
  // rows (kernels/prefetch.h, StreamThrottle).
  for (Type t : {Type::kQ8_0, Type::kQ4_0, Type::kQ4_K}) {
    for (const auto& [rows, cols] : {std::pair<std::int64_t, std::int64_t>{65536, 2048},
                                     std::pair<std::int64_t, std::int64_t>{16384, 8192}}) {
      const std::string name = "stream/" + std::string(tensor::type_name(t)) + "/" +
                               std::to_string(rows) + "x" + std::to_string(cols);
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) {
        run_rows(st, t, rows, cols, 1);
      })->Unit(benchmark::kMicrosecond);
    }
  }
  return true;
}();

}  // namespace
}  // namespace herd::kernels
