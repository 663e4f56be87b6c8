// An architecture is one object that knows how to bind a layer's weights and run the layer's
// forward step. Each lives in its own arch_*.cpp file and is listed once in arch_registry.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "kernels/ops.h"
#include "model/hparams.h"
#include "model/weights.h"
#include "util/thread_pool.h"

namespace herd::model {

class Model;

// One layer's K and V rows in the cache: position p at k + p * k_stride (likewise v).
struct LayerKv {
  float* k = nullptr;
  float* v = nullptr;
  std::int64_t k_stride = 0;
  std::int64_t v_stride = 0;
  int n_ctx = 0;
};

// Floats per cached position of one layer.
struct KvWidth {
  std::int64_t k = 0;
  std::int64_t v = 0;
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

// Everything one layer's forward step needs. hidden is [n_tokens, n_embd], updated in place
// (the residual stream); the layer's K/V rows for positions pos0.. are written to kv.
struct LayerForward {
  const Model& model;
  const LayerWeights& w;
  int il;  // global layer index
  float* hidden;
  int n_tokens;
  int pos0;
  LayerKv kv;
  Workspace& ws;
  ThreadPool& pool;
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
