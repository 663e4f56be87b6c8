#include "engine/kv_cache.h"

#include "kernels/attention.h"
#include "util/error.h"

namespace herd::engine {

KvCache::KvCache(const model::Model& model, int n_ctx)
    : n_ctx_(n_ctx), n_layers_(model.range().size()), width_(model.kv_width()) {
  if (n_ctx <= 0) fail_argument("context size must be positive, got {}", n_ctx);
  HERD_CHECK(width_.n_heads > 0 && width_.k % width_.n_heads == 0 &&
             width_.v % width_.n_heads == 0);
  // Blocked K rounds each head's positions up to whole blocks.
  k_block_ = width_.k_blocked ? kernels::kKeyBlock : 1;
  k_positions_ = (n_ctx + k_block_ - 1) / k_block_ * k_block_;
  const auto per_layer_k = static_cast<std::size_t>(k_positions_) * width_.k;
  const auto per_layer_v = static_cast<std::size_t>(n_ctx) * width_.v;
  k_.assign(per_layer_k * n_layers_, 0);
  v_.assign(per_layer_v * n_layers_, 0);
}

model::LayerKv KvCache::layer(int i) {
  HERD_CHECK(i >= 0 && i < n_layers_);
  model::LayerKv kv;
  kv.k = k_.data() + static_cast<std::size_t>(i) * k_positions_ * width_.k;
  kv.v = v_.data() + static_cast<std::size_t>(i) * n_ctx_ * width_.v;
  kv.n_heads = width_.n_heads;
  kv.k_head_dim = width_.k / width_.n_heads;
  kv.v_head_dim = width_.v / width_.n_heads;
  kv.k_head_stride = k_positions_ * kv.k_head_dim;
  kv.k_block = k_block_;
  kv.v_head_stride = n_ctx_ * kv.v_head_dim;
  kv.n_ctx = n_ctx_;
  return kv;
}

}  // namespace herd::engine
