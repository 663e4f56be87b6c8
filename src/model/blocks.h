// Building blocks shared by the architectures: weight binding and forward steps of multi-head
// attention with grouped KV heads, the SwiGLU feed-forward network and mixture-of-experts
// feed-forward (routed experts plus optional shared experts).
#pragma once

#include "kernels/attention.h"
#include "model/architecture.h"
#include "model/hparams.h"
#include "model/weights.h"

namespace herd::model {

struct AttentionOptions {
  bool biases = false;   // attn_q/k/v.bias (qwen2)
  bool qk_norm = false;  // attn_q_norm / attn_k_norm per head (qwen3)
};

// How router scores become expert weights (llama.cpp build_moe_ffn).
struct MoeOptions {
  ExpertGating gating = ExpertGating::kSoftmax;
  bool normalize = false;  // divide the chosen weights by their sum
  float scale = 0.0f;      // multiply them by this (0: no scaling)
};

void bind_attention(TensorBinder& b, const HParams& hp, int il, LayerWeights& w,
                    const AttentionOptions& options);
void bind_dense_ffn(TensorBinder& b, const HParams& hp, int il, LayerWeights& w);
// Routed experts; shared experts of n_ff_shared width when n_ff_shared > 0 (with their sigmoid
// gate ffn_gate_inp_shexp when gated_shared).
void bind_moe_ffn(TensorBinder& b, const HParams& hp, int il, LayerWeights& w, int n_ff_shared,
                  bool gated_shared);

// Attention of every run of the batch over its own sequence's cache. `a` holds what all runs
// share (head counts and sizes, scale, q and out strides); each run gets q and out at its first
// token, its cache and its positions. latent_kv: K and V are both the cached latent rows
// (deepseek2's absorbed MLA).
void attend_runs(const LayerForward& f, kernels::AttentionArgs a, const float* q, float* out,
                 bool latent_kv = false);

// hidden += attention(rms_norm(hidden) * attn_norm), writing K/V of the new positions.
void attention_gqa(const LayerForward& f);
// Batches of at least this many tokens run a SwiGLU feed-forward in two halves of its hidden
// dimension (less scratch; decode and short batches take one pass).
inline constexpr int kFfnSplitTokens = 64;

// hidden += ffn(rms_norm(hidden) * ffn_norm): dense, or MoE when the layer has experts.
void feed_forward(const LayerForward& f, const MoeOptions& moe);

// hidden[i] += delta[i] for n_tokens rows.
void add_residual(float* hidden, const float* delta, std::int64_t n);
// y[t, r] += b[r] for n_tokens rows of stride ld.
void add_bias(float* y, const Vector& b, int n_tokens, std::int64_t ld);

}  // namespace herd::model
