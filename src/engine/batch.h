// A batch for the model: tokens of several sequences side by side. Each run is a stretch of
// consecutive positions of one sequence (a decode step is a run of one token, a prompt chunk a
// longer one); runs follow each other in the token array. The layers' projections and
// feed-forward take the whole batch at once — that is what makes 8 decode streams cost little
// more than one — while attention reads each sequence's own cache.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace herd::engine {

struct BatchRun {
  std::int32_t seq = 0;       // sequence (KV cache slot), 0 <= seq < Pipeline::n_seqs()
  std::int32_t pos0 = 0;      // position of the run's first token in its sequence
  std::int32_t n_tokens = 0;  // > 0
  bool logits = false;        // the logits of the run's last token are wanted
};

struct Batch {
  std::vector<std::int32_t> tokens;  // the runs' tokens, in run order
  std::vector<BatchRun> runs;
  // Logits of every token (herd logits, tests) instead of one row per run with `logits`.
  bool all_logits = false;
  // Every token computed as its own decode step would compute it (kernels/decode_shaped.h):
  // a cache rebuilt after a pipeline change then holds exactly what it held before.
  bool decode_shaped = false;

  // Appends a run of `ids` at pos0 of sequence `seq`.
  void add(std::int32_t seq, std::int32_t pos0, std::span<const std::int32_t> ids, bool logits);
  // Rows of logits a forward of this batch returns: one per token with all_logits, else one per
  // run with `logits`, in run order.
  int logit_rows() const;
  bool empty() const { return tokens.empty(); }
};

// The runs that cover tokens [begin, end) of a batch whose runs are `runs`: runs cut at the
// edges get the positions of their part, and keep `logits` only where their last token is inside.
std::vector<BatchRun> slice_runs(std::span<const BatchRun> runs, int begin, int end);

// Throws herd::InvalidArgument when the runs do not describe exactly n_tokens tokens, a run is
// empty, names a sequence outside [0, n_seqs), or a sequence appears twice in one batch.
void check_runs(std::span<const BatchRun> runs, std::size_t n_tokens, int n_seqs);

}  // namespace herd::engine
