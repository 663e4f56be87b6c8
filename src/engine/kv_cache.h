// Keys and values of past positions for the layers of one stage, in f32.
// Per layer: K [n_ctx, k_width], V [n_ctx, v_width], where k_width = n_head_kv * head_dim_k
// (deepseek2 with attn_kv_b: full per-head K and V, n_head * key_length / value_length; with
// attn_k_b / attn_v_b: only the latent, K [n_ctx, kv_lora_rank + n_rot] and no V).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/model.h"

namespace herd::engine {

class KvCache {
 public:
  // Allocates n_ctx positions for each layer of the model's range.
  KvCache(const model::Model& model, int n_ctx);

  int n_ctx() const { return n_ctx_; }
  int n_layers() const { return n_layers_; }
  // View of local layer i (0 = the first layer of the range).
  model::LayerKv layer(int i);
  std::size_t bytes() const { return (k_.size() + v_.size()) * sizeof(float); }

 private:
  int n_ctx_;
  int n_layers_;
  model::KvWidth width_;
  std::vector<float> k_;  // [n_layers, n_ctx, width.k]
  std::vector<float> v_;  // [n_layers, n_ctx, width.v]
};

}  // namespace herd::engine
