#include "engine/kv_cache.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "kernels/attention.h"
#include "util/error.h"

namespace herd::engine {

KvCache::KvCache(const model::Model& model, int n_ctx, int n_seqs)
    : n_ctx_(n_ctx), n_seqs_(n_seqs), n_layers_(model.range().size()), width_(model.kv_width()) {
  if (n_ctx <= 0) fail_argument("context size must be positive, got {}", n_ctx);
  if (n_seqs <= 0) fail_argument("the cache needs at least one sequence, got {}", n_seqs);
  // No heads at all: a tensor-parallel rank that holds none of the model's KV heads.
  HERD_CHECK(width_.n_heads == 0 ? width_.k == 0 && width_.v == 0
                                 : width_.n_heads > 0 && width_.k % width_.n_heads == 0 &&
                                       width_.v % width_.n_heads == 0);
  // Blocked K rounds each head's positions up to whole blocks.
  k_block_ = width_.k_blocked ? kernels::kKeyBlock : 1;
  k_positions_ = (n_ctx + k_block_ - 1) / k_block_ * k_block_;
  layer_k_ = static_cast<std::size_t>(k_positions_) * width_.k;
  layer_v_ = static_cast<std::size_t>(n_ctx) * width_.v;
  // Each slot starts on a page, so release() returns exactly its pages.
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t slot_bytes = (layer_k_ + layer_v_) * n_layers_ * sizeof(std::uint16_t);
  slot_elements_ = (slot_bytes + page - 1) / page * page / sizeof(std::uint16_t);
  bytes_ = slot_elements_ * sizeof(std::uint16_t) * static_cast<std::size_t>(n_seqs);
  void* p = mmap(nullptr, std::max<std::size_t>(bytes_, 1), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    fail("cannot reserve {} MiB for the KV cache ({} sequences of {} positions): {}; lower -c "
         "or --parallel",
         bytes_ >> 20, n_seqs, n_ctx, std::strerror(errno));
  }
  data_ = static_cast<std::uint16_t*>(p);
}

KvCache::~KvCache() {
  if (data_) munmap(data_, std::max<std::size_t>(bytes_, 1));
}

std::uint16_t* KvCache::slot(int seq) const {
  HERD_CHECK(seq >= 0 && seq < n_seqs_);
  return data_ + static_cast<std::size_t>(seq) * slot_elements_;
}

model::LayerKv KvCache::layer(int seq, int i) const {
  HERD_CHECK(i >= 0 && i < n_layers_);
  std::uint16_t* base = slot(seq);
  model::LayerKv kv;
  kv.k = base + static_cast<std::size_t>(i) * layer_k_;
  kv.v = base + static_cast<std::size_t>(n_layers_) * layer_k_ + static_cast<std::size_t>(i) * layer_v_;
  kv.n_heads = width_.n_heads;
  kv.k_head_dim = width_.n_heads > 0 ? width_.k / width_.n_heads : 0;
  kv.v_head_dim = width_.n_heads > 0 ? width_.v / width_.n_heads : 0;
  kv.k_head_stride = k_positions_ * kv.k_head_dim;
  kv.k_block = k_block_;
  kv.v_head_stride = n_ctx_ * kv.v_head_dim;
  kv.n_ctx = n_ctx_;
  return kv;
}

void KvCache::copy_prefix(int src, int dst, int n) {
  if (n < 0 || n > n_ctx_) fail_argument("cannot copy {} positions of a {}-position cache", n, n_ctx_);
  if (src == dst || n == 0) return;
  // Whole K blocks: the positions past n in the last block are overwritten before they are read.
  const std::int64_t k_pos = (static_cast<std::int64_t>(n) + k_block_ - 1) / k_block_ * k_block_;
  for (int i = 0; i < n_layers_; ++i) {
    const model::LayerKv from = layer(src, i);
    const model::LayerKv to = layer(dst, i);
    for (int h = 0; h < from.n_heads; ++h) {
      std::memcpy(to.k + h * to.k_head_stride, from.k + h * from.k_head_stride,
                  static_cast<std::size_t>(k_pos * from.k_head_dim) * sizeof(std::uint16_t));
      if (from.v_head_dim > 0) {
        std::memcpy(to.v + h * to.v_head_stride, from.v + h * from.v_head_stride,
                    static_cast<std::size_t>(n * from.v_head_dim) * sizeof(std::uint16_t));
      }
    }
  }
}

void KvCache::release(int seq) {
  madvise(slot(seq), slot_elements_ * sizeof(std::uint16_t), MADV_DONTNEED);
}

}  // namespace herd::engine
