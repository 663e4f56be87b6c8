// The forward pass over one stage: a contiguous range of layers of a model, with its KV cache
// and scratch buffers. A whole model is one Stage; a cluster chains several, passing the hidden
// state [n_tokens, n_embd] from one to the next.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/kv_cache.h"
#include "model/architecture.h"
#include "model/model.h"
#include "util/thread_pool.h"

namespace herd::engine {

class Stage {
 public:
  // Most tokens one pass through the layers takes; longer batches are split (see run_layers).
  static constexpr int kMaxMicroBatch = 256;

  Stage(std::shared_ptr<const model::Model> model, int n_ctx, ThreadPool& pool);

  const model::Model& model() const { return *model_; }
  int n_ctx() const { return cache_.n_ctx(); }
  int n_embd() const { return model_->n_embd(); }
  // Positions [0, n_cached) hold valid K/V.
  int n_cached() const { return n_cached_; }

  // Throws, changing nothing, what embed (token ids) and run_layers (positions) would throw for
  // this batch: callers that feed a long batch in pieces check it whole first, so that a bad
  // token or a full context is reported before any piece has filled the cache.
  void check_batch(std::span<const std::int32_t> tokens, int pos0) const;
  // hidden = token embeddings [tokens.size(), n_embd]. Needs the first layer range (token_embd).
  // InvalidArgument for a token id outside the vocabulary.
  void embed(std::span<const std::int32_t> tokens, std::vector<float>& hidden);
  // Runs hidden [n_tokens, n_embd] at positions pos0.. through the stage's layers in place.
  // Error when pos0 + n_tokens exceeds n_ctx; InvalidArgument when pos0 leaves a gap after the
  // cached positions.
  void run_layers(float* hidden, int n_tokens, int pos0);
  // logits [n_rows, n_vocab] of the given hidden rows [n_rows, n_embd]. Needs the last layers.
  void head(const float* hidden, int n_rows, std::vector<float>& logits);
  // Forgets positions >= n_keep.
  void truncate(int n_keep);

 private:
  void check_positions(int n_tokens, int pos0) const;

  std::shared_ptr<const model::Model> model_;
  ThreadPool& pool_;
  KvCache cache_;
  model::Workspace ws_;
  std::vector<float> head_norm_;  // [n_rows, n_embd] scratch of head()
  int n_cached_ = 0;
};

}  // namespace herd::engine
