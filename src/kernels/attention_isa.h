// Per-ISA inner loops of the attention kernel (internal to kernels/): chosen once per call.
// K and V rows are f16; queries, scores and accumulators f32.
#pragma once

#include <cstdint>

#include "kernels/static_count.h"
#include "util/cpu_features.h"

namespace herd::kernels {

// Most query heads one work item handles (the loops keep one accumulator per head in registers).
inline constexpr int kAttentionMaxHeads = 8;

// Calls fn(std::integral_constant<int, NQ>{}) with NQ = n_q (1..kAttentionMaxHeads): the loops
// are templates on the head count so that one accumulator per head stays in a register.
template <class Fn>
inline void with_head_count(int n_q, Fn&& fn) {
  with_static_count<kAttentionMaxHeads>(n_q, fn);
}

struct AttentionLoops {
  // s[h * s_stride + i] = scale * (q_h . k_i) for h < n_q (<= kAttentionMaxHeads), i < n;
  // q_h at q + h * d, k_i at k + i * k_stride.
  void (*scores)(const float* q, int n_q, int d, const std::uint16_t* k, std::int64_t k_stride,
                 int n, float scale, float* s, int s_stride);
  // acc[h * d + j] += sum_i w[h * w_stride + i] * v_i[j] for h < n_q, j < d; v_i at
  // v + i * v_stride.
  void (*accumulate)(const float* w, int w_stride, int n_q, const std::uint16_t* v,
                     std::int64_t v_stride, int n, int d, float* acc);
  // As scores, for the blocked K layout: k is the head's first block; positions [p0, p0 + n),
  // s[h * s_stride + i] for position p0 + i.
  void (*scores_blocked)(const float* q, int n_q, int d, const std::uint16_t* k, int p0, int n,
                         float scale, float* s, int s_stride);
  float (*max)(const float* x, int n);
  // x[i] = exp(x[i] - max); returns the sum.
  float (*exp_sum)(float* x, int n, float max);
  void (*to_f16)(const float* x, std::uint16_t* y, std::int64_t n);
};

// The loops of one ISA (falls back to scalar where that ISA is not compiled in).
const AttentionLoops& attention_loops(Isa isa);

#if defined(__x86_64__) || defined(_M_X64)
namespace avx2 {
const AttentionLoops& attention_loops();
}
namespace avx512 {
const AttentionLoops& attention_loops();
}
#endif

}  // namespace herd::kernels
