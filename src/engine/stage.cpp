#include "engine/stage.h"

#include <algorithm>
#include <cstring>

#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "util/error.h"

namespace herd::engine {

Stage::Stage(std::shared_ptr<const model::Model> model, int n_ctx, ThreadPool& pool, int n_seqs,
             model::Reducer* reducer)
    : model_(std::move(model)),
      pool_(pool),
      reducer_(reducer),
      cache_(*model_, n_ctx, n_seqs),
      n_cached_(static_cast<std::size_t>(n_seqs), 0) {
  if (!model_->slice().whole() && reducer_ == nullptr) {
    fail_argument("{}: a stage holding a tensor slice ({}) needs a reducer for its group",
                  model_->file().path(), model_->slice().describe());
  }
}

namespace {

void check_token_ids(std::span<const std::int32_t> tokens, int n_vocab) {
  for (const std::int32_t id : tokens) {
    if (id < 0 || id >= n_vocab) {
      fail_argument("token id {} is outside the vocabulary of {} tokens", id, n_vocab);
    }
  }
}

}  // namespace

void Stage::check_positions(int seq, int n_tokens, int pos0) const {
  const int cached = n_cached_.at(seq);
  if (pos0 < 0 || pos0 > cached) {
    fail_argument("position {} would leave a gap: only positions [0, {}) of sequence {} are cached",
                  pos0, cached, seq);
  }
  if (static_cast<std::int64_t>(pos0) + n_tokens > cache_.n_ctx()) {
    fail("context is full: positions up to {} were asked for but the context holds {}",
         static_cast<std::int64_t>(pos0) + n_tokens, cache_.n_ctx());
  }
}

void Stage::check_batch(const Batch& batch) const {
  if (model_->has_embedding()) check_token_ids(batch.tokens, model_->n_vocab());
  check_runs(batch.runs, batch.tokens.size(), n_seqs());
  for (const BatchRun& r : batch.runs) check_positions(r.seq, r.n_tokens, r.pos0);
}

void Stage::embed(std::span<const std::int32_t> tokens, std::vector<float>& hidden) {
  if (!model_->has_embedding()) {
    fail("this stage holds layers [{}, {}) and has no token embedding", model_->range().first,
         model_->range().last);
  }
  check_token_ids(tokens, model_->n_vocab());
  const int n_embd = model_->n_embd();
  hidden.resize(tokens.size() * static_cast<std::size_t>(n_embd));
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    kernels::dequantize_row(model_->token_embd(), tokens[i], hidden.data() + i * n_embd);
  }
}

void Stage::run_layers(float* hidden, int n_tokens, int pos0) {
  if (n_tokens <= 0) return;
  const BatchRun run{0, pos0, n_tokens, false};
  run_layers(hidden, std::span(&run, 1));
}

void Stage::run_layers(float* hidden, std::span<const BatchRun> runs) {
  int n_tokens = 0;
  for (const BatchRun& r : runs) n_tokens += std::max(r.n_tokens, 0);
  if (n_tokens == 0) return;
  check_runs(runs, static_cast<std::size_t>(n_tokens), n_seqs());
  for (const BatchRun& r : runs) check_positions(r.seq, r.n_tokens, r.pos0);
  // Long batches run in micro-batches: the scratch buffers grow with the batch (a 4000-token
  // prompt of a 1B model needed ~500 MiB of activations in one piece), while the blocked kernels
  // are already at full speed at kMaxMicroBatch tokens. Each micro-batch attends to the ones
  // before it through the KV cache, so the result is the same.
  if (n_tokens <= kMaxMicroBatch) {
    run_micro_batch(hidden, runs, n_tokens);
    return;
  }
  for (int done = 0; done < n_tokens; done += kMaxMicroBatch) {
    const int n = std::min(kMaxMicroBatch, n_tokens - done);
    const std::vector<BatchRun> piece = slice_runs(runs, done, done + n);
    run_micro_batch(hidden + static_cast<std::int64_t>(done) * model_->n_embd(), piece, n);
  }
}

void Stage::run_micro_batch(float* hidden, std::span<const BatchRun> runs, int n_tokens) {
  const auto range = model_->range();
  const auto& arch = model_->arch();
  positions_.resize(static_cast<std::size_t>(n_tokens));
  run_of_.resize(static_cast<std::size_t>(n_tokens));
  seq_runs_.resize(runs.size());
  int first = 0;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    for (int t = 0; t < runs[i].n_tokens; ++t) {
      positions_[first + t] = runs[i].pos0 + t;
      run_of_[first + t] = static_cast<std::int32_t>(i);
    }
    seq_runs_[i].first = first;
    seq_runs_[i].n_tokens = runs[i].n_tokens;
    seq_runs_[i].pos0 = runs[i].pos0;
    first += runs[i].n_tokens;
  }
  for (int il = range.first; il < range.last; ++il) {
    for (std::size_t i = 0; i < runs.size(); ++i) {
      seq_runs_[i].kv = cache_.layer(runs[i].seq, il - range.first);
    }
    const model::LayerForward f{*model_,          model_->layer(il), il,    hidden,
                                n_tokens,         seq_runs_,         positions_.data(),
                                run_of_.data(),   ws_,               pool_,
                                reducer_};
    arch.forward_layer(f);
  }
  for (const BatchRun& r : runs) n_cached_[r.seq] = r.pos0 + r.n_tokens;
}

void Stage::head(const float* hidden, int n_rows, std::vector<float>& logits) {
  if (!model_->has_head()) {
    fail("this stage holds layers [{}, {}) and has no output head", model_->range().first,
         model_->range().last);
  }
  const auto& hp = model_->hparams();
  const std::int64_t n_embd = hp.n_embd;
  head_norm_.resize(static_cast<std::size_t>(n_rows) * n_embd);
  for (int r = 0; r < n_rows; ++r) {
    kernels::rms_norm(hidden + r * n_embd, model_->output_norm().data,
                      head_norm_.data() + r * n_embd, n_embd, hp.rms_eps);
  }
  logits.resize(static_cast<std::size_t>(n_rows) * hp.n_vocab);
  kernels::matmul(model_->output(), head_norm_.data(), n_rows, n_embd, logits.data(), hp.n_vocab,
                  pool_);
}

void Stage::head_for(const float* hidden, std::span<const BatchRun> runs, bool all_logits,
                     std::vector<float>& logits) {
  const std::int64_t n_embd = model_->n_embd();
  if (all_logits) {
    int n = 0;
    for (const BatchRun& r : runs) n += r.n_tokens;
    head(hidden, n, logits);
    return;
  }
  int rows = 0;
  int end = 0;
  for (const BatchRun& r : runs) {
    end += r.n_tokens;
    if (!r.logits) continue;
    head_rows_.resize(static_cast<std::size_t>(rows + 1) * n_embd);
    std::memcpy(head_rows_.data() + rows * n_embd, hidden + (end - 1) * n_embd,
                n_embd * sizeof(float));
    ++rows;
  }
  if (rows == 0) {
    logits.clear();
    return;
  }
  head(head_rows_.data(), rows, logits);
}

void Stage::truncate(int seq, int n_keep) {
  if (n_keep < 0) fail_argument("cannot keep {} positions", n_keep);
  if (seq < 0 || seq >= n_seqs()) fail_argument("sequence {} does not exist", seq);
  if (n_keep < n_cached_[seq]) n_cached_[seq] = n_keep;
  if (n_keep == 0) cache_.release(seq);
}

void Stage::copy_prefix(int src, int dst, int n) {
  if (src < 0 || src >= n_seqs() || dst < 0 || dst >= n_seqs())
    fail_argument("cannot copy sequence {} to {}: this stage holds {} sequences", src, dst,
                  n_seqs());
  if (n < 0 || n > n_cached_[src])
    fail_argument("cannot copy {} positions of sequence {}: it has {} cached", n, src,
                  n_cached_[src]);
  cache_.copy_prefix(src, dst, n);
  n_cached_[dst] = n;
}


}  // namespace herd::engine
