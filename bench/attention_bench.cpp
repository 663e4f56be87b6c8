// The attention kernel (kernels/attention.h) on one thread, in the shapes of a Llama-3.2-1B layer
// (32 query heads, 8 KV heads, head size 64, f16 cache, K blocked by kKeyBlock, head-major):
// attention/prefill/tTOKENS_posPOS0 (a micro-batch of the engine's prefill) and
// attention/decode/posPOS0 (one token at long context). GFLOP/s counts 4 * head_dim * n_head per
// visible (token, position) pair: q.k and p.v, two flops per multiply-add each. Rates are per CPU
// second of the calling thread, so the figure is the per-core speed even on a busy machine.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "util/thread_pool.h"

namespace herd::kernels {
namespace {

constexpr int kHeads = 32;
constexpr int kHeadsKv = 8;
constexpr int kHeadDim = 64;

// Random f16 values: normal with sd 1, built from the bits directly so the bench does not depend
// on tensor/ conversions (exponent 14 or 15, random mantissa and sign: magnitudes in [0.5, 2)).
std::vector<std::uint16_t> random_f16(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint16_t> v(n);
  for (auto& x : v) {
    const std::uint32_t r = rng();
    x = static_cast<std::uint16_t>(((r & 1u) << 15) | ((14u + ((r >> 1) & 1u)) << 10) |
                                   ((r >> 2) & 0x3FFu));
  }
  return v;
}

void run_attention(benchmark::State& state, int n_tokens, int pos0) {
  const int n_ctx = (pos0 + n_tokens + kKeyBlock - 1) / kKeyBlock * kKeyBlock;
  const std::int64_t head_stride = static_cast<std::int64_t>(n_ctx) * kHeadDim;
  // [n_head_kv, n_ctx, head_dim], K blocked by kKeyBlock positions inside each head.
  const auto k = random_f16(static_cast<std::size_t>(kHeadsKv * head_stride), 1);
  const auto v = random_f16(static_cast<std::size_t>(kHeadsKv * head_stride), 2);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> q(static_cast<std::size_t>(n_tokens) * kHeads * kHeadDim);
  for (float& x : q) x = normal(rng);
  std::vector<float> out(q.size());

  ThreadPool one(1);
  AttentionArgs a;
  a.q = q.data();
  a.q_stride = kHeads * kHeadDim;
  a.k = k.data();
  a.k_stride = kHeadDim;
  a.k_head_stride = head_stride;
  a.k_block = kKeyBlock;
  a.v = v.data();
  a.v_stride = kHeadDim;
  a.v_head_stride = head_stride;
  a.out = out.data();
  a.out_stride = kHeads * kHeadDim;
  a.n_tokens = n_tokens;
  a.pos0 = pos0;
  a.n_head = kHeads;
  a.n_head_kv = kHeadsKv;
  a.head_dim_k = kHeadDim;
  a.head_dim_v = kHeadDim;
  a.scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  std::vector<float> scratch(attention_scratch_floats(a, one.size()));
  a.scratch = scratch.data();
  for (auto _ : state) {
    attention(a, one);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  // Token t sees pos0 + t + 1 positions.
  const double pairs = static_cast<double>(n_tokens) * (pos0 + 1) +
                       static_cast<double>(n_tokens) * (n_tokens - 1) / 2.0;
  const double flops = 4.0 * kHeadDim * kHeads * pairs;
  state.counters["GFLOP/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * flops / 1e9, benchmark::Counter::kIsRate);
}

[[maybe_unused]] const bool registered = [] {
  const struct {
    const char* name;
    int n_tokens, pos0;
  } cases[] = {{"attention/prefill/t256_pos256", 256, 256},
               {"attention/prefill/t256_pos0", 256, 0},
               {"attention/decode/pos4000", 1, 4000}};
  for (const auto& c : cases) {
    benchmark::RegisterBenchmark(c.name, [=](benchmark::State& st) {
      run_attention(st, c.n_tokens, c.pos0);
    })->Unit(benchmark::kMicrosecond);
  }
  return true;
}();

}  // namespace
}  // namespace herd::kernels
