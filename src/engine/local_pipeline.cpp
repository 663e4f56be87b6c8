#include "engine/local_pipeline.h"

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

LocalPipeline::LocalPipeline(std::shared_ptr<const model::Model> model, int n_ctx, ThreadPool& pool)
    : stage_(whole(std::move(model)), n_ctx, pool) {}

void LocalPipeline::forward(std::span<const std::int32_t> tokens, std::int32_t pos0,
                            bool all_logits, std::vector<float>& logits) {
  if (tokens.empty()) fail_argument("forward needs at least one token");
  const int n = static_cast<int>(tokens.size());
  // Embedding, layers and head run one micro-batch at a time, so the hidden state of a long
  // prompt is never held whole (a 4000-token prompt of a 1B model: 32 MiB). The whole batch is
  // checked first: a bad token or a full context fails before any piece fills the cache.
  stage_.check_batch(tokens, pos0);
  const int n_embd = stage_.n_embd();
  const int n_vocab = stage_.model().n_vocab();
  if (all_logits) logits.resize(static_cast<std::size_t>(n) * n_vocab);
  for (int done = 0; done < n; done += Stage::kMaxMicroBatch) {
    const int m = std::min(Stage::kMaxMicroBatch, n - done);
    stage_.embed(tokens.subspan(done, m), hidden_);
    stage_.run_layers(hidden_.data(), m, pos0 + done);
    if (all_logits) {
      stage_.head(hidden_.data(), m, head_logits_);
      std::copy(head_logits_.begin(), head_logits_.end(),
                logits.begin() + static_cast<std::ptrdiff_t>(done) * n_vocab);
    } else if (done + m == n) {
      stage_.head(hidden_.data() + static_cast<std::size_t>(m - 1) * n_embd, 1, logits);
    }
  }
}

}  // namespace herd::engine
