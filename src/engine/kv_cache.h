// Keys and values of past positions for the layers of one stage, in f16 (llama.cpp's default
// cache type: half the bytes that decode at long context reads per token).
// Per layer, head-major: K [n_heads, n_ctx, head_dim_k], V [n_heads, n_ctx, head_dim_v], where
// n_heads = n_head_kv (deepseek2 with attn_kv_b: full per-head K and V, n_head heads of
// key_length / value_length; with attn_k_b / attn_v_b: only the latent, one "head" K
// [n_ctx, kv_lora_rank + n_rot] and no V).
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
  std::size_t bytes() const { return (k_.size() + v_.size()) * sizeof(std::uint16_t); }

 private:
  int n_ctx_;
  int n_layers_;
  model::KvWidth width_;
  int k_block_ = 1;               // positions per K block (model::LayerKv::k_block)
  int k_positions_ = 0;           // n_ctx rounded up to whole K blocks
  std::vector<std::uint16_t> k_;  // f16 [n_layers, width.n_heads, n_ctx, width.k / n_heads]
  std::vector<std::uint16_t> v_;  // f16 [n_layers, width.n_heads, n_ctx, width.v / n_heads]
};

}  // namespace herd::engine
