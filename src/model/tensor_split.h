// Tensor parallelism: every layer split over the ranks of a group, so that each rank holds and
// streams only its part of the weights and all ranks compute at once.
//
// Rank r holds, of every layer:
// - attention: the query heads of its KV heads [kv_head0, kv_head0 + n_head_kv) — their rows of
//   wq / wk / wv (and biases), their columns of wo, and their part of the KV cache;
// - a dense feed-forward: hidden columns [ff0, ff0 + n_ff) — rows of gate / up, columns of down;
//   shared experts likewise;
// - routed experts [expert0, expert0 + n_expert) whole (expert parallelism); the router is
//   replicated, so every rank picks the same experts for a token and runs those it holds.
// Each rank's attention and feed-forward outputs are then partial sums of the whole layer's, and a
// Reducer adds them up over the group after each; every rank continues with the same hidden
// state (norms, router and residual stream are replicated). On one node the slice is whole and
// there is no reducer: the model code is the same for 1 or N ranks.
//
// Splits may be uneven (sized to each rank's measured speed) and a rank may get no KV head or no
// expert at all (3 ranks over 2 KV heads): its contribution to that part is zero.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/hparams.h"
#include "model/weights.h"

namespace herd::model {

struct ColumnRange {
  std::int64_t first = 0;
  std::int64_t count = 0;
};

// A rank's place in a tensor-parallel group: what a node is told; the slice follows from it and
// the model's hyper-parameters (tensor_slice).
struct TensorShare {
  int rank = 0;
  std::vector<double> weights;  // relative speed of each rank of the group
};

struct TensorSlice {
  int rank = 0;
  std::vector<double> weights = {1.0};  // relative speed of each rank of the group
  int kv_head0 = 0;
  int n_head_kv = 0;  // query heads: n_head_kv * (n_head / n_head_kv) from kv_head0 * that
  int expert0 = 0;
  int n_expert = 0;  // routed experts

  int n_ranks() const { return static_cast<int>(weights.size()); }
  bool whole() const { return n_ranks() == 1; }
  // This rank's hidden columns of a feed-forward `width` wide (dense or shared experts), in
  // units that keep every quantized block of the down projection whole (256 columns for the
  // K-quants, 32 for the others): a rank's columns are whole blocks, and its activations round
  // to the same blocks as on one node.
  ColumnRange columns(std::int64_t width) const;
  // The slice a single node holds: everything.
  static TensorSlice all(const HParams& hp);
  // "rank 1 of 2: kv heads 1..2, 50% of the feed-forward, experts 2..4" for logs.
  std::string describe() const;
};

// Rank `rank` of a group whose ranks have relative speeds `weights` (one per rank, > 0). KV heads,
// feed-forward columns and experts are shared out in proportion to the weights. InvalidArgument
// for a bad rank or weight, or a rank left with no KV head and no feed-forward work.
TensorSlice tensor_slice(const HParams& hp, std::span<const double> weights, int rank);

// `total` units shared out in proportion to `weights` (largest remainder, ties to the first):
// element i is rank i's count; they sum to total.
std::vector<std::int64_t> proportional_split(std::int64_t total, std::span<const double> weights);

// Narrows a bound layer's weights to the slice, copying each split matrix's part into `owned`
// as a compact matrix — rows as they are, columns (wo, down projections) in whole blocks, or as
// f32 where the heads' columns do not fall on block boundaries — so that a rank's resident memory
// is its slice. Routed experts stay views (a rank's experts are whole, contiguous matrices).
// `release(data, bytes)` is told of every source that was copied (the file's pages of it are no
// longer needed). deepseek2's heads count as KV heads.
using ReleaseFn = std::function<void(const void* data, std::size_t bytes)>;
void slice_layer(const HParams& hp, const TensorSlice& slice, LayerWeights& w,
                 std::vector<std::unique_ptr<std::vector<std::uint8_t>>>& owned,
                 const ReleaseFn& release);

// Adds up the ranks' partial sums of a layer's output: after all_reduce, data[0, n) holds on
// every rank the sum over the group, bitwise the same on all of them (the ranks' parts are added
// in rank order everywhere). Called by the model code once after attention and once after the
// feed-forward of each layer, from the thread that runs the layers. Throws herd::Error when a
// rank fails or does not answer in time.
class Reducer {
 public:
  virtual ~Reducer() = default;
  virtual void all_reduce(float* data, std::int64_t n) = 0;
};

}  // namespace herd::model
