// The seam between generation and wherever the model's layers run. One process runs the whole
// model in a LocalPipeline; a cluster runs stages on several machines behind the same interface
// (cluster/ implements it; engine/ never knows there is a network).
//
// A pipeline holds n_seqs() sequences, each with its own KV cache of n_ctx() positions; a batch
// carries tokens of several of them (engine/batch.h). Batches may be pipelined: submit() up to
// max_in_flight() batches before collect()ing the first one's logits, so that with several
// stages each stage works on a different batch (a single-process pipeline has depth 1).
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <vector>

#include "engine/batch.h"

namespace herd::engine {

class Pipeline {
 public:
  virtual ~Pipeline() = default;

  // Runs a batch through the whole model, appending its tokens to their sequences' caches.
  // Fills `logits` with [batch.logit_rows(), n_vocab] floats. Throws herd::Error (context full,
  // node lost) or herd::InvalidArgument (bad token, gap, unknown sequence).
  virtual void run(const Batch& batch, std::vector<float>& logits) = 0;

  // Batches that may be in flight at once (submitted, not yet collected).
  virtual int max_in_flight() const { return 1; }
  // Starts a batch; its logits come from a later collect(), in submission order. A batch must
  // not hold a token whose sequence has a batch in flight before it unless it continues right
  // after it (the scheduler never does this: a sequence waits for its logits). The default runs
  // it at once.
  virtual void submit(const Batch& batch);
  // The logits of the oldest batch submitted and not yet collected. Throws what run() throws;
  // after a failure every batch in flight is lost and the pipeline's caches are unknown.
  virtual void collect(std::vector<float>& logits);
  virtual int in_flight() const { return static_cast<int>(done_.size()); }
  // Forgets every batch in flight (after a failure: their logits are never collected).
  virtual void drop_in_flight() { done_.clear(); }

  // Forgets every cached position >= n_keep of sequence seq.
  virtual void forget(std::int32_t seq, std::int32_t n_keep) = 0;
  // Sequence dst's positions [0, n) become a copy of sequence src's (both on every stage): a
  // shared prompt prefix is reused instead of recomputed.
  virtual void copy_prefix(std::int32_t src, std::int32_t dst, std::int32_t n) = 0;

  virtual std::int32_t n_ctx() const = 0;  // positions per sequence
  virtual std::int32_t n_vocab() const = 0;
  virtual std::int32_t n_seqs() const { return 1; }

  // One sequence (0): runs `tokens` at positions pos0, pos0+1, ...; `logits` gets [n, n_vocab]
  // floats (all_logits) or the last position's [1, n_vocab].
  void forward(std::span<const std::int32_t> tokens, std::int32_t pos0, bool all_logits,
               std::vector<float>& logits);
  // Sequence 0 keeps positions [0, n_keep).
  void truncate(std::int32_t n_keep) { forget(0, n_keep); }

 private:
  std::deque<std::vector<float>> done_;  // the default submit()'s results, oldest first
};

}  // namespace herd::engine
