#include "engine/batch.h"

#include <algorithm>

#include "util/error.h"

namespace herd::engine {

void Batch::add(std::int32_t seq, std::int32_t pos0, std::span<const std::int32_t> ids,
                bool logits) {
  runs.push_back({seq, pos0, static_cast<std::int32_t>(ids.size()), logits});
  tokens.insert(tokens.end(), ids.begin(), ids.end());
}

int Batch::logit_rows() const {
  if (all_logits) return static_cast<int>(tokens.size());
  return static_cast<int>(std::count_if(runs.begin(), runs.end(),
                                        [](const BatchRun& r) { return r.logits; }));
}

std::vector<BatchRun> slice_runs(std::span<const BatchRun> runs, int begin, int end) {
  std::vector<BatchRun> out;
  int first = 0;
  for (const BatchRun& r : runs) {
    const int last = first + r.n_tokens;
    const int lo = std::max(first, begin);
    const int hi = std::min(last, end);
    if (lo < hi) {
      out.push_back({r.seq, r.pos0 + (lo - first), hi - lo, r.logits && hi == last});
    }
    first = last;
  }
  return out;
}

void check_runs(std::span<const BatchRun> runs, std::size_t n_tokens, int n_seqs) {
  std::size_t total = 0;
  std::vector<bool> seen(static_cast<std::size_t>(std::max(n_seqs, 0)), false);
  for (const BatchRun& r : runs) {
    if (r.n_tokens <= 0) fail_argument("a batch run of sequence {} has no tokens", r.seq);
    if (r.seq < 0 || r.seq >= n_seqs) {
      fail_argument("sequence {} does not exist: this pipeline holds {} sequences", r.seq, n_seqs);
    }
    if (seen[r.seq]) fail_argument("sequence {} appears twice in one batch", r.seq);
    seen[r.seq] = true;
    total += static_cast<std::size_t>(r.n_tokens);
  }
  if (total != n_tokens) {
    fail_argument("the batch's runs cover {} tokens but it holds {}", total, n_tokens);
  }
}

}  // namespace herd::engine
