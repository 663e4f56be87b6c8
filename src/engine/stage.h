// The forward pass over one stage: a contiguous range of layers of a model, with its KV cache
// (a slot per sequence) and scratch buffers. A whole model is one Stage; a cluster chains
// several, passing the hidden state [n_tokens, n_embd] from one to the next. A batch may hold
// tokens of several sequences (engine/batch.h).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/batch.h"
#include "engine/kv_cache.h"
#include "model/architecture.h"
#include "model/model.h"
#include "util/thread_pool.h"

namespace herd::engine {

class Stage {
 public:
  // Most tokens one pass through the layers takes; longer batches are split (see run_layers).
  static constexpr int kMaxMicroBatch = 256;

  // n_ctx positions for each of n_seqs sequences. A model holding a tensor slice (a rank of a
  // tensor-parallel group) needs the reducer that adds up the group's partial outputs; it must
  // outlive the stage.
  Stage(std::shared_ptr<const model::Model> model, int n_ctx, ThreadPool& pool, int n_seqs = 1,
        model::Reducer* reducer = nullptr);

  const model::Model& model() const { return *model_; }
  int n_ctx() const { return cache_.n_ctx(); }
  int n_seqs() const { return cache_.n_seqs(); }
  int n_embd() const { return model_->n_embd(); }
  const KvCache& cache() const { return cache_; }
  // Positions [0, n_cached(seq)) of sequence seq hold valid K/V.
  int n_cached(int seq = 0) const { return n_cached_.at(seq); }

  // Throws, changing nothing, what embed (token ids) and run_layers (sequences, positions) would
  // throw for this batch: callers that feed a long batch in pieces check it whole first, so that
  // a bad token or a full context is reported before any piece has filled the cache.
  void check_batch(const Batch& batch) const;
  // hidden = token embeddings [tokens.size(), n_embd]. Needs the first layer range (token_embd).
  // InvalidArgument for a token id outside the vocabulary.
  void embed(std::span<const std::int32_t> tokens, std::vector<float>& hidden);
  // Runs hidden [n_tokens, n_embd], the tokens of `runs` in order, through the stage's layers in
  // place. Error when a run goes past n_ctx; InvalidArgument when a run's pos0 leaves a gap after
  // its sequence's cached positions, or the runs are malformed (check_runs).
  void run_layers(float* hidden, std::span<const BatchRun> runs);
  // One sequence (0): n_tokens at positions pos0...
  void run_layers(float* hidden, int n_tokens, int pos0);
  // logits [n_rows, n_vocab] of the given hidden rows [n_rows, n_embd]. Needs the last layers.
  void head(const float* hidden, int n_rows, std::vector<float>& logits);
  // logits of the rows a batch of `runs` asks for (Batch::logit_rows) out of its hidden state.
  void head_for(const float* hidden, std::span<const BatchRun> runs, bool all_logits,
                std::vector<float>& logits);
  // Forgets positions >= n_keep of sequence seq; at 0 its cache memory goes back to the system.
  void truncate(int n_keep) { truncate(0, n_keep); }
  void truncate(int seq, int n_keep);
  // Sequence dst's first n positions become a copy of sequence src's (a shared prompt prefix);
  // positions of dst past n are forgotten. InvalidArgument when src has fewer than n cached.
  void copy_prefix(int src, int dst, int n);

 private:
  void check_positions(int seq, int n_tokens, int pos0) const;
  void run_micro_batch(float* hidden, std::span<const BatchRun> runs, int n_tokens);

  std::shared_ptr<const model::Model> model_;
  ThreadPool& pool_;
  model::Reducer* reducer_;
  KvCache cache_;
  model::Workspace ws_;
  std::vector<float> head_norm_;       // [n_rows, n_embd] scratch of head()
  std::vector<float> head_rows_;       // gathered rows of head_for()
  std::vector<std::int32_t> positions_;  // per token of a micro-batch
  std::vector<std::int32_t> run_of_;     // per token: its run
  std::vector<model::SeqRun> seq_runs_;
  std::vector<int> n_cached_;  // per sequence
};

}  // namespace herd::engine
