// An architecture is one object that knows how to bind a layer's weights and run the layer's
// forward step. Each lives in its own arch_*.cpp file and is listed once in arch_registry.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "kernels/ops.h"
#include "model/hparams.h"
#include "model/tensor_split.h"
#include "model/weights.h"
#include "util/thread_pool.h"

namespace herd::model {

class Model;

// Bytes of one cached K or V element (f16).
inline constexpr std::size_t kKvElementBytes = 2;

// One layer's cache, head-major so that attention streams each head's rows sequentially:
// K [n_heads, n_ctx, k_head_dim], head h of position p at k + h * k_head_stride + p * k_head_dim
// (likewise v). Elements are f16 (IEEE half bits), llama.cpp's default cache type; rows are
// written with kernels::f32_to_f16_row.
struct LayerKv {
  std::uint16_t* k = nullptr;
  std::uint16_t* v = nullptr;
  int n_heads = 0;
  std::int64_t k_head_dim = 0;  // also the stride between positions of one head
  std::int64_t v_head_dim = 0;
  std::int64_t k_head_stride = 0;  // n_ctx * k_head_dim
  std::int64_t v_head_stride = 0;
  int n_ctx = 0;
  // Positions per K block: 1 is one row per position (k_at); kernels::kKeyBlock stores each
  // head's K dimension-major within blocks of that many positions (kernels/attention.h), for
  // attention without horizontal sums. Element j of (head, pos) is k_first(head, pos)[j * k_block].
  int k_block = 1;

  // Row-major K only (k_block == 1).
  std::uint16_t* k_at(int head, std::int64_t pos) const {
    return k + head * k_head_stride + pos * k_head_dim;
  }
  std::uint16_t* k_first(int head, std::int64_t pos) const {
    return k + head * k_head_stride + (pos / k_block) * k_block * k_head_dim + pos % k_block;
  }
  std::uint16_t* v_at(int head, std::int64_t pos) const {
    return v + head * v_head_stride + pos * v_head_dim;
  }
};

// Elements per cached position of one layer, stored as n_heads blocks of k / n_heads and
// v / n_heads.
struct KvWidth {
  std::int64_t k = 0;
  std::int64_t v = 0;
  int n_heads = 1;
  // K stored in blocks of positions (LayerKv::k_block); not where K rows are also read as V.
  bool k_blocked = false;
};

// Scratch buffers for the forward pass, owned by whoever runs it (engine::Stage). A buffer only
// grows, so after the first batch of a given size nothing is allocated per token.
class Workspace {
 public:
  enum Slot {
    kNorm,
    kQ,
    kK,
    kV,
    kAttnOut,
    kProj,
    kGate,
    kUp,
    kScores,
    kRope,
    kRouter,
    kRouteWeights,
    kExpertIn,
    kExpertGate,
    kExpertUp,
    kExpertOut,
    kShexpGate,
    kLatent,
    kQAbsorbed,
    kLatentOut,
    kQLora,
    kDownPartial,
    kSlotCount
  };
  enum IntSlot { kRouteIds, kExpertTokens, kIntSlotCount };

  float* floats(Slot slot, std::size_t n) {
    auto& b = floats_[slot];
    if (b.size() < n) b.resize(n);
    return b.data();
  }
  std::int32_t* ints(IntSlot slot, std::size_t n) {
    auto& b = ints_[slot];
    if (b.size() < n) b.resize(n);
    return b.data();
  }

 private:
  std::vector<float> floats_[kSlotCount];
  std::vector<std::int32_t> ints_[kIntSlotCount];
};

// A run of a batch: tokens [first, first + n_tokens) of the batch are consecutive positions
// pos0.. of one sequence, whose cache is kv. A batch holds runs of several sequences (the
// scheduler's decode tokens and prompt chunks side by side); the projections and the
// feed-forward run over the whole batch at once, attention over each run's own cache.
struct SeqRun {
  int first = 0;
  int n_tokens = 0;
  int pos0 = 0;
  LayerKv kv;
};

// Everything one layer's forward step needs. hidden is [n_tokens, n_embd], updated in place
// (the residual stream); each run's K/V rows for its positions are written to its kv.
// positions[t] and run_of[t] give token t's position and run (precomputed: per-token loops run
// in parallel).
struct LayerForward {
  const Model& model;
  const LayerWeights& w;
  int il;  // global layer index
  float* hidden;
  int n_tokens;
  std::span<const SeqRun> runs;
  const std::int32_t* positions;
  const std::int32_t* run_of;
  Workspace& ws;
  ThreadPool& pool;
  // Tensor parallelism: adds up the ranks' partial outputs (null on one node, where the slice
  // is whole and outputs are complete).
  Reducer* reducer = nullptr;

  // The cache and position of batch token t.
  const LayerKv& kv_of(int t) const { return runs[run_of[t]].kv; }
  // data [n] becomes the sum over the tensor-parallel group of every rank's data.
  void all_reduce(float* data, std::int64_t n) const {
    if (reducer) reducer->all_reduce(data, n);
  }
};

class Architecture {
 public:
  virtual ~Architecture() = default;
  // Checks what read_common_hparams cannot (keys this architecture requires).
  virtual void check_hparams(const gguf::File& file, HParams& hp) const {}
  virtual kernels::RopeConfig rope_config(const HParams& hp) const;
  virtual KvWidth kv_width(const HParams& hp) const;
  virtual void bind_layer(TensorBinder& b, const HParams& hp, int il, LayerWeights& w) const = 0;
  virtual void forward_layer(const LayerForward& f) const = 0;

 protected:
  // llama.cpp's rope type per architecture: NEOX pairs (i, i + n/2) or normal pairs (2i, 2i+1).
  virtual bool rope_neox() const = 0;
};

// The architecture registered under a GGUF general.architecture name, or null.
const Architecture* find_architecture(std::string_view name);
std::vector<std::string_view> architecture_names();

}  // namespace herd::model
