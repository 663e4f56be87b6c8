// Keys and values of past positions for the layers of one stage, in f16 (llama.cpp's default
// cache type: half the bytes that decode at long context reads per token), for several
// sequences: one fixed slot of n_ctx positions per sequence (see docs/architecture.md, "Many
// sequences", for why slots and not paged blocks).
// Per slot and layer, head-major: K [n_heads, n_ctx, head_dim_k], V [n_heads, n_ctx, head_dim_v],
// where n_heads = n_head_kv (deepseek2 with attn_kv_b: full per-head K and V, n_head heads of
// key_length / value_length; with attn_k_b / attn_v_b: only the latent, one "head" K
// [n_ctx, kv_lora_rank + n_rot] and no V).
//
// The memory is reserved, not committed: pages become resident as positions are written, so a
// server with 8 slots of 4096 positions costs what its sequences hold, not 8 full contexts;
// release() gives a slot's pages back.
#pragma once

#include <cstddef>
#include <cstdint>

#include "model/model.h"

namespace herd::engine {

class KvCache {
 public:
  // Reserves n_ctx positions for each of n_seqs sequences and each layer of the model's range.
  KvCache(const model::Model& model, int n_ctx, int n_seqs = 1);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int n_ctx() const { return n_ctx_; }
  int n_seqs() const { return n_seqs_; }
  int n_layers() const { return n_layers_; }
  // View of local layer i (0 = the first layer of the range) of sequence seq.
  model::LayerKv layer(int seq, int i) const;
  // Bytes reserved: all slots.
  std::size_t bytes() const { return bytes_; }

  // Copies positions [0, n) of every layer from sequence src to sequence dst.
  void copy_prefix(int src, int dst, int n);
  // Returns the memory of sequence seq's slot to the system (its contents become zeros).
  void release(int seq);

 private:
  std::uint16_t* slot(int seq) const;

  int n_ctx_;
  int n_seqs_;
  int n_layers_;
  model::KvWidth width_;
  int k_block_ = 1;              // positions per K block (model::LayerKv::k_block)
  int k_positions_ = 0;          // n_ctx rounded up to whole K blocks
  std::size_t layer_k_ = 0;      // elements of one layer's K
  std::size_t layer_v_ = 0;      // elements of one layer's V
  std::size_t slot_elements_ = 0;  // one sequence: all layers' K then V, page-aligned
  std::size_t bytes_ = 0;
  std::uint16_t* data_ = nullptr;  // anonymous mapping of bytes_
};

}  // namespace herd::engine
