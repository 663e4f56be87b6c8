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

// Lanes of each row's running sum in softmax_wide.
inline constexpr int kAttentionSumLanes = 16;

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

  // The wide prefill loops (nullptr where an ISA has none: attention.cpp then keeps to the ones
  // above). An item of many query rows widens its K/V tile to f32 once, so the conversion is
  // shared by all rows, and the loops block rows and positions/columns in registers.
  // y[i] = x[i] as f32.
  void (*to_f32)(const std::uint16_t* x, float* y, std::int64_t n);
  // s[r * s_stride + 16 * b + l] = scale * (q_r . k) for r < n_q (any count), b < nb, l < 16,
  // where k[j] = kf[(b * d + j) * 16 + l] (the blocked K layout, widened). Row r needs only its
  // first visible0 + r / heads positions (causal mask, as softmax_wide); the rest may be skipped.
  void (*scores_wide)(const float* q, int n_q, int d, const float* kf, int nb, int visible0,
                      int heads, float scale, float* s, int s_stride);
  // One tile's online-softmax step for rows r < n_q, in base 2 (scores_wide's scale includes
  // log2(e)): row r may see the first clamp(visible0 + r / heads, 0, n) of the tile's n
  // positions. s becomes the weights 2^(s - m_new) there and 0 past them (up to n); m[r] (running
  // max) and the running sum (the sum of l[r * kAttentionSumLanes + i], lanes kept apart so that
  // no tile needs a horizontal sum) are updated, and the row's accumulators
  // acc[r * acc_stride + j], j < dv, rescaled when the max grows.
  void (*softmax_wide)(float* s, int s_stride, int n_q, int n, int visible0, int heads, float* m,
                       float* l, float* acc, int acc_stride, int dv);
  // acc[r * acc_stride + j] += sum_i w[r * w_stride + i] * vf[i * v_stride + j] for r < n_q,
  // i < n, j < d. Row r's weights past its first visible0 + r / heads are 0 and may be skipped.
  void (*accumulate_wide)(const float* w, int w_stride, int n_q, const float* vf, int v_stride,
                          int n, int visible0, int heads, int d, float* acc, int acc_stride);
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
