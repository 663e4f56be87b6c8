// Matrix-vector (decode) and matrix-matrix (prefill) products per weight type.
// Counters: GB/s of weight bytes streamed per call, GFLOP/s (2 * rows * cols * tokens).
// HERD_ISA=scalar|avx2|avx512 picks the kernels; HERD_BENCH_THREADS the pool size (default: all
// cores). rows/...: one thread calling matmul_rows (per-core kernel speed, CPU-time rates).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/matmul.h"
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

struct Weights {
  std::vector<std::uint8_t> bytes;
  Matrix m;
};

std::shared_ptr<Weights> make_weights(Type type, std::int64_t rows, std::int64_t cols) {
  auto w = std::make_shared<Weights>();
  const std::size_t stride = tensor::row_bytes(type, cols);
  w->bytes.resize(stride * static_cast<std::size_t>(rows));
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> row(static_cast<std::size_t>(cols));
  for (std::int64_t r = 0; r < rows; ++r) {
    for (float& v : row) v = dist(rng);
    tensor::quantize(type, row.data(), w->bytes.data() + r * stride, cols);
  }
  w->m = Matrix{type, w->bytes.data(), rows, cols, stride};
  return w;
}

void run(benchmark::State& state, Type type, std::int64_t rows, std::int64_t cols,
         std::int64_t tokens) {
  const auto w = make_weights(type, rows, cols);
  std::vector<float> x(static_cast<std::size_t>(tokens * cols));
  std::mt19937 rng(2);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& v : x) v = dist(rng);
  std::vector<float> y(static_cast<std::size_t>(tokens * rows));
  for (auto _ : state) {
    matmul(w->m, x.data(), tokens, cols, y.data(), rows, pool());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(iters * static_cast<double>(w->bytes.size()) / 1e9,
                                              benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(
      iters * 2.0 * static_cast<double>(rows * cols * tokens) / 1e9, benchmark::Counter::kIsRate);
  state.counters["threads"] = pool().size();
}

// One thread, no pool: the kernels' own speed per core. Rates use CPU time, which a busy
// machine (other processes taking the core) distorts less than wall time.
void run_rows(benchmark::State& state, Type type, std::int64_t rows, std::int64_t cols,
              std::int64_t tokens) {
  const auto w = make_weights(type, rows, cols);
  std::vector<float> x(static_cast<std::size_t>(tokens * cols));
  std::mt19937 rng(2);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& v : x) v = dist(rng);
  std::vector<float> y(static_cast<std::size_t>(tokens * rows));
  for (auto _ : state) {
    matmul_rows(w->m, x.data(), tokens, cols, y.data(), rows, 0, rows);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(iters * static_cast<double>(w->bytes.size()) / 1e9,
                                              benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(
      iters * 2.0 * static_cast<double>(rows * cols * tokens) / 1e9, benchmark::Counter::kIsRate);
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
  return true;
}();

}  // namespace
}  // namespace herd::kernels
