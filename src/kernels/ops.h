// Element-wise and row-wise operations of a transformer forward pass: RMS norm, rotary position
// embedding (as ggml_rope_ext, incl. YaRN and per-dimension frequency factors), softmax,
// activations. Scalar code: the matrix products (kernels/matmul.h) and attention
// (kernels/attention.h) dominate the cost.
#pragma once

#include <cstdint>

#include "util/thread_pool.h"

namespace herd::kernels {

// y[i] = x[i] / sqrt(mean(x^2) + eps) * w[i] for i < n (w may be null: no scale). y may be x.
void rms_norm(const float* x, const float* w, float* y, std::int64_t n, float eps);

// In-place on `rows` rows of `n` floats each, row r at x + r * stride.
void rms_norm_rows(float* x, const float* w, std::int64_t rows, std::int64_t n, std::int64_t stride,
                   float eps);

// Rotary position embedding, the parameters of ggml_rope_ext.
struct RopeConfig {
  int n_rot = 0;      // rotated dimensions of each head (the rest pass through)
  bool neox = false;  // NEOX: pairs (i, i + n_rot/2); normal (GPT-J): pairs (2i, 2i+1)
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;   // 1 / (linear or YaRN scaling factor)
  float ext_factor = 0.0f;   // YaRN extrapolation mix; 0 disables YaRN
  float attn_factor = 1.0f;  // multiplies cos and sin (YaRN magnitude scaling)
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
  int n_ctx_orig = 0;                   // training context for the YaRN correction range
  const float* freq_factors = nullptr;  // [n_rot / 2] divisors of theta (Llama 3 rope_freqs)
};

// Precomputed cos/sin of one position for every rotated pair: [n_rot / 2] each.
// Fills cos_sin[2*i] = cos, cos_sin[2*i+1] = sin.
void rope_cos_sin(const RopeConfig& config, std::int64_t pos, float* cos_sin);

// Rotates `n_heads` heads of `head_dim` floats (head h at x + h * head_dim) in place, using the
// table from rope_cos_sin.
void rope_apply(const RopeConfig& config, const float* cos_sin, float* x, int n_heads,
                int head_dim);

// x[i] = exp(x[i] - max) / sum, numerically stable.
void softmax(float* x, std::int64_t n);

inline float silu(float x);
inline float sigmoid(float x);
// out[i] = silu(gate[i]) * up[i]. out may alias gate or up.
void swiglu(const float* gate, const float* up, float* out, std::int64_t n);

inline float silu(float x) {
  return x / (1.0f + __builtin_expf(-x));
}
inline float sigmoid(float x) {
  return 1.0f / (1.0f + __builtin_expf(-x));
}

}  // namespace herd::kernels
