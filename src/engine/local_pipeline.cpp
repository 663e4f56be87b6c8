#include "engine/local_pipeline.h"

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
  stage_.embed(tokens, hidden_);
  stage_.run_layers(hidden_.data(), n, pos0);
  const int n_embd = stage_.n_embd();
  if (all_logits) {
    stage_.head(hidden_.data(), n, logits);
  } else {
    stage_.head(hidden_.data() + static_cast<std::size_t>(n - 1) * n_embd, 1, logits);
  }
}

}  // namespace herd::engine
