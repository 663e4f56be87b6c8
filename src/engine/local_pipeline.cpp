#include "engine/local_pipeline.h"

#include "kernels/decode_shaped.h"

#include <algorithm>

#include "util/error.h"

namespace herd::engine {

namespace {

std::shared_ptr<const model::Model> whole(std::shared_ptr<const model::Model> model) {
  HERD_CHECK(model != nullptr);
  if (!model->has_embedding() || !model->has_head()) {
    fail_argument("a local pipeline needs all layers, but the model was loaded for [{}, {})",
                  model->range().first, model->range().last);
  }
  return model;
}

}  // namespace

LocalPipeline::LocalPipeline(std::shared_ptr<const model::Model> model, int n_ctx, ThreadPool& pool,
                             int n_seqs, model::Reducer* reducer)
    : stage_(whole(std::move(model)), n_ctx, pool, n_seqs, reducer) {}

void LocalPipeline::run(const Batch& batch, std::vector<float>& logits) {
  if (batch.empty()) fail_argument("forward needs at least one token");
  // Embedding, layers and head run one micro-batch at a time, so the hidden state of a long
  // prompt is never held whole (a 4000-token prompt of a 1B model: 32 MiB). The whole batch is
  // checked first: a bad token or a full context fails before any piece fills the cache.
  stage_.check_batch(batch);
  const kernels::DecodeShaped shape(batch.decode_shaped);
  const int n = static_cast<int>(batch.tokens.size());
  const std::size_t n_vocab = static_cast<std::size_t>(stage_.model().n_vocab());
  logits.resize(static_cast<std::size_t>(batch.logit_rows()) * n_vocab);
  std::size_t rows_done = 0;
  const std::span<const std::int32_t> tokens(batch.tokens);
  for (int done = 0; done < n; done += Stage::kMaxMicroBatch) {
    const int m = std::min(Stage::kMaxMicroBatch, n - done);
    const std::vector<BatchRun> piece = slice_runs(batch.runs, done, done + m);
    stage_.embed(tokens.subspan(done, m), hidden_);
    stage_.run_layers(hidden_.data(), piece);
    stage_.head_for(hidden_.data(), piece, batch.all_logits, head_logits_);
    std::copy(head_logits_.begin(), head_logits_.end(),
              logits.begin() + static_cast<std::ptrdiff_t>(rows_done * n_vocab));
    rows_done += head_logits_.size() / n_vocab;
  }
}


}  // namespace herd::engine
