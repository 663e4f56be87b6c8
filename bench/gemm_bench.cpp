// The blocked prefill kernel (kernels/gemm.h) on one thread: gemm/TYPE/ROWSxCOLS/tTOKENS.
// Rates are per CPU second of the calling thread (a pool of one runs everything on it), so the
// figure is the per-core kernel speed even on a busy machine.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "kernels/gemm.h"
#include "tensor/type.h"
#include "util/thread_pool.h"

namespace herd::kernels {
namespace {

using tensor::Type;

void run_gemm(benchmark::State& state, Type type, std::int64_t rows, std::int64_t cols,
              std::int64_t tokens) {
  if (!gemm_supported(type)) {
    state.SkipWithError("no blocked kernel for this type on this CPU");
    return;
  }
  ThreadPool one(1);
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const std::size_t stride = tensor::row_bytes(type, cols);
  std::vector<std::uint8_t> bytes(stride * static_cast<std::size_t>(rows));
  std::vector<float> row(static_cast<std::size_t>(cols));
  for (std::int64_t r = 0; r < rows; ++r) {
    for (float& v : row) v = dist(rng);
    tensor::quantize(type, row.data(), bytes.data() + r * stride, cols);
  }
  const Matrix w{type, bytes.data(), rows, cols, stride};
  std::vector<float> x(static_cast<std::size_t>(tokens * cols));
  for (float& v : x) v = dist(rng);
  std::vector<float> y(static_cast<std::size_t>(tokens * rows));
  for (auto _ : state) {
    const Product product{&w, y.data(), rows};
    gemm(std::span(&product, 1), x.data(), tokens, cols, one);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * 2.0 *
                             static_cast<double>(rows * cols * tokens) / 1e9,
                         benchmark::Counter::kIsRate);
}

[[maybe_unused]] const bool registered = [] {
  for (Type t : {Type::kQ4_0, Type::kQ8_0, Type::kQ4_K, Type::kQ6_K}) {
    for (std::int64_t tokens : {64, 512}) {
      const std::string name =
          "gemm/" + std::string(tensor::type_name(t)) + "/2048x2048/t" + std::to_string(tokens);
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) {
        run_gemm(st, t, 2048, 2048, tokens);
      })->Unit(benchmark::kMillisecond);
    }
  }
  return true;
}();

}  // namespace
}  // namespace herd::kernels
