// Hyper-parameters of a model, read from GGUF metadata ("{arch}.block_count" ...), with the
// defaults llama.cpp applies when a key is absent.
#pragma once

#include <cstdint>
#include <string>

#include "gguf/reader.h"

namespace herd::model {

enum class RopeScaling { kNone, kLinear, kYarn };
enum class ExpertGating { kSoftmax = 1, kSigmoid = 2 };  // values of {arch}.expert_gating_func

struct HParams {
  std::string arch;       // general.architecture
  std::string name;       // general.name (may be empty)
  int n_layer = 0;        // block_count
  int n_embd = 0;         // embedding_length
  int n_ff = 0;           // feed_forward_length (dense layers)
  int n_head = 0;         // attention.head_count
  int n_head_kv = 0;      // attention.head_count_kv (defaults to n_head)
  int head_dim_k = 0;     // attention.key_length (defaults to n_embd / n_head)
  int head_dim_v = 0;     // attention.value_length (defaults to n_embd / n_head)
  int n_rot = 0;          // rope.dimension_count (defaults to head_dim_k)
  int n_vocab = 0;        // rows of token_embd / output, else tokenizer.ggml.tokens
  int n_ctx_train = 0;    // context_length
  float rms_eps = 1e-5f;  // attention.layer_norm_rms_epsilon

  float rope_freq_base = 10000.0f;
  RopeScaling rope_scaling = RopeScaling::kNone;
  float rope_freq_scale = 1.0f;    // 1 / rope.scaling.factor
  float rope_attn_factor = 1.0f;   // rope.scaling.attn_factor
  int rope_n_ctx_orig = 0;         // rope.scaling.original_context_length (else n_ctx_train)
  float rope_yarn_log_mul = 0.0f;  // rope.scaling.yarn_log_multiplier (DeepSeek mscale)
  bool has_rope_freqs = false;     // rope_freqs.weight present (Llama 3.1 frequency factors)

  // Mixture of experts (0 when dense).
  int n_expert = 0;                   // expert_count
  int n_expert_used = 0;              // expert_used_count
  int n_ff_exp = 0;                   // expert_feed_forward_length (defaults to n_ff)
  int n_ff_shexp = 0;                 // expert_shared_feed_forward_length
  int n_expert_shared = 0;            // expert_shared_count
  int n_layer_dense_lead = 0;         // leading_dense_block_count
  float expert_weights_scale = 0.0f;  // expert_weights_scale (0: none)
  bool expert_weights_norm = false;   // expert_weights_norm
  ExpertGating expert_gating = ExpertGating::kSoftmax;

  // Multi-head latent attention (deepseek2); 0 when absent.
  int q_lora_rank = 0;   // attention.q_lora_rank (0: plain attn_q)
  int kv_lora_rank = 0;  // attention.kv_lora_rank
  // The file has attn_k_b / attn_v_b (not attn_kv_b): attention runs in the latent space and the
  // KV cache holds the latent (kv_lora_rank + n_rot per position) instead of per-head K and V.
  bool mla_absorbed = false;

  bool is_moe_layer(int il) const { return n_expert > 0 && il >= n_layer_dense_lead; }
};

// Reads the keys every architecture shares. Throws FormatError naming a missing or bad key.
// n_vocab is filled from the tensors (token_embd, output) or the tokenizer when both are absent.
HParams read_common_hparams(const gguf::File& file);

}  // namespace herd::model
