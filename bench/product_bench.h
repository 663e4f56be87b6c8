// The shared timing loop of the kernel benchmarks: random weights of a type, random activations,
// and the GB/s (weight bytes per call) and GFLOP/s (2 * rows * cols * tokens) counters.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/matmul.h"
#include "tensor/type.h"

namespace herd::kernels {

// Calls product(w, x, y) once per iteration; x is [tokens, cols], y is [tokens, rows].
template <class ProductFn>
void time_product(benchmark::State& state, tensor::Type type, std::int64_t rows, std::int64_t cols,
                  std::int64_t tokens, ProductFn&& product) {
  const std::size_t stride = tensor::row_bytes(type, cols);
  std::vector<std::uint8_t> bytes(stride * static_cast<std::size_t>(rows));
  std::mt19937 rng(1);
  std::normal_distribution<float> weight(0.0f, 0.02f);
  std::vector<float> row(static_cast<std::size_t>(cols));
  for (std::int64_t r = 0; r < rows; ++r) {
    for (float& v : row) v = weight(rng);
    tensor::quantize(type, row.data(), bytes.data() + r * stride, cols);
  }
  const Matrix w{type, bytes.data(), rows, cols, stride};
  std::normal_distribution<float> activation(0.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(tokens * cols));
  for (float& v : x) v = activation(rng);
  std::vector<float> y(static_cast<std::size_t>(tokens * rows));
  for (auto _ : state) {
    product(w, x.data(), y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(iters * static_cast<double>(bytes.size()) / 1e9,
                                              benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(
      iters * 2.0 * static_cast<double>(rows * cols * tokens) / 1e9, benchmark::Counter::kIsRate);
}

}  // namespace herd::kernels
