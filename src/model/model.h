// A model bound to the tensors of a GGUF file, for a range of layers: a stage of a cluster may be
// given a file that holds only its own tensors. Weights are views into the mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gguf/reader.h"
#include "kernels/ops.h"
#include "model/architecture.h"
#include "model/hparams.h"
#include "model/tensor_split.h"
#include "model/weights.h"

namespace herd::model {

// Layers [first, last).
struct LayerRange {
  int first = 0;
  int last = 0;
  int size() const { return last - first; }
};

class Model {
 public:
  // Binds the layers in `range` (all layers when absent), token_embd when range.first == 0 and
  // output_norm / output (or the tied token_embd) when range.last == n_layer. Throws FormatError
  // for an unknown architecture, a missing tensor or a shape that disagrees with the metadata,
  // InvalidArgument for a range outside [0, n_layer]. With a tensor-parallel share (a rank of a
  // group with more than one rank, tensor_split.h), only that rank's slice of every layer is bound
  // (embedding, head and norms stay whole), and the KV cache width is that of its heads.
  static std::shared_ptr<Model> load(std::shared_ptr<const gguf::File> file,
                                     std::optional<LayerRange> range = {},
                                     std::optional<TensorShare> share = {});

  const HParams& hparams() const { return hp_; }
  const Architecture& arch() const { return *arch_; }
  const std::string& arch_name() const { return hp_.arch; }
  const gguf::File& file() const { return *file_; }
  LayerRange range() const { return range_; }
  // The part of every layer this model holds (whole on a single node).
  const TensorSlice& slice() const { return slice_; }
  int n_layer() const { return hp_.n_layer; }
  int n_embd() const { return hp_.n_embd; }
  int n_vocab() const { return hp_.n_vocab; }
  bool has_embedding() const { return range_.first == 0; }
  bool has_head() const { return range_.last == hp_.n_layer; }

  // Weights of global layer il (range.first <= il < range.last).
  const LayerWeights& layer(int il) const;
  const Matrix& token_embd() const { return token_embd_; }  // [n_embd, n_vocab]
  const Vector& output_norm() const { return output_norm_; }
  const Matrix& output() const { return output_; }  // [n_embd, n_vocab] (maybe tied)
  const kernels::RopeConfig& rope() const { return rope_; }
  KvWidth kv_width() const { return kv_width_; }

  // For placement, from the file's tensor table (so also for layers outside the range when the
  // file holds them; 0 for those it does not).
  std::size_t layer_bytes(int il) const;
  std::size_t embedding_bytes() const;
  std::size_t head_bytes() const;                    // output_norm + output (token_embd when tied)
  std::size_t kv_bytes_per_token_per_layer() const;  // f16 K and V
  // Several lines for `herd inspect`.
  std::string summary() const;

 private:
  Model() = default;

  std::shared_ptr<const gguf::File> file_;
  const Architecture* arch_ = nullptr;
  HParams hp_;
  LayerRange range_;
  TensorSlice slice_;
  std::vector<LayerWeights> layers_;  // [range.size()]
  Matrix token_embd_;
  Vector output_norm_;
  Matrix output_;
  bool tied_output_ = false;
  std::vector<float> rope_freqs_;
  kernels::RopeConfig rope_;
  KvWidth kv_width_;
  std::vector<std::size_t> layer_bytes_;  // [n_layer]
  std::vector<std::unique_ptr<std::vector<float>>> owned_;
  std::vector<std::unique_ptr<std::vector<std::uint8_t>>> owned_slices_;  // copied columns
};

}  // namespace herd::model
