// The blocked prefill kernel (kernels/gemm.h) on one thread: gemm/TYPE/ROWSxCOLS/tTOKENS.
// Rates are per CPU second of the calling thread (a pool of one runs everything on it), so the
// figure is the per-core kernel speed even on a busy machine.
#include <benchmark/benchmark.h>

#include <string>

#include "kernels/gemm.h"
#include "product_bench.h"
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
  time_product(state, type, rows, cols, tokens, [&](const Matrix& w, const float* x, float* y) {
    const Product product{&w, y, rows};
    gemm(std::span(&product, 1), x, tokens, cols, one);
  });
}

[[maybe_unused]] const bool registered = [] {
  for (Type t : {Type::kQ4_0, Type::kQ8_0, Type::kQ4_K, Type::kQ6_K}) {
    // Square at two batch sizes, then the 1B model's feed-forward shapes at the engine's
    // micro-batch (engine/stage.h: 256 tokens), where the down projection's activations
    // (256 x 8192) no longer fit in L2.
    const struct {
      std::int64_t rows, cols, tokens;
    } shapes[] = {{2048, 2048, 64},  {2048, 2048, 512}, {8192, 2048, 256}, {2048, 8192, 256},
                  // Decode of several sequences at once (engine/scheduler.h): a few tokens.
                  {8192, 2048, 4},   {8192, 2048, 8},   {8192, 2048, 16}};
    for (const auto& s : shapes) {
      const std::string name = "gemm/" + std::string(tensor::type_name(t)) + "/" +
                               std::to_string(s.rows) + "x" + std::to_string(s.cols) + "/t" +
                               std::to_string(s.tokens);
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) {
        run_gemm(st, t, s.rows, s.cols, s.tokens);
      })->Unit(benchmark::kMillisecond);
    }
  }
  return true;
}();

}  // namespace
}  // namespace herd::kernels
