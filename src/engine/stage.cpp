#include "engine/stage.h"

#include <algorithm>

#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "util/error.h"

namespace herd::engine {

Stage::Stage(std::shared_ptr<const model::Model> model, int n_ctx, ThreadPool& pool)
    : model_(std::move(model)), pool_(pool), cache_(*model_, n_ctx) {}

namespace {

void check_token_ids(std::span<const std::int32_t> tokens, int n_vocab) {
  for (const std::int32_t id : tokens) {
    if (id < 0 || id >= n_vocab) {
      fail_argument("token id {} is outside the vocabulary of {} tokens", id, n_vocab);
    }
  }
}

}  // namespace

void Stage::check_positions(int n_tokens, int pos0) const {
  if (pos0 < 0 || pos0 > n_cached_) {
    fail_argument("position {} would leave a gap: only positions [0, {}) are cached", pos0,
                  n_cached_);
  }
  if (static_cast<std::int64_t>(pos0) + n_tokens > cache_.n_ctx()) {
    fail("context is full: positions up to {} were asked for but the context holds {}",
         static_cast<std::int64_t>(pos0) + n_tokens, cache_.n_ctx());
  }
}

void Stage::check_batch(std::span<const std::int32_t> tokens, int pos0) const {
  if (model_->has_embedding()) check_token_ids(tokens, model_->n_vocab());
  check_positions(static_cast<int>(tokens.size()), pos0);
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
  check_positions(n_tokens, pos0);
  const auto range = model_->range();
  const auto& arch = model_->arch();
  // Long batches run in micro-batches: the scratch buffers grow with the batch (a 4000-token
  // prompt of a 1B model needed ~500 MiB of activations in one piece), while the blocked kernels
  // are already at full speed at kMaxMicroBatch tokens. Each micro-batch attends to the ones
  // before it through the KV cache, so the result is the same.
  for (int done = 0; done < n_tokens; done += kMaxMicroBatch) {
    const int n = std::min(kMaxMicroBatch, n_tokens - done);
    float* x = hidden + static_cast<std::int64_t>(done) * model_->n_embd();
    for (int il = range.first; il < range.last; ++il) {
      const model::LayerForward f{
          *model_, model_->layer(il), il, x, n, pos0 + done, cache_.layer(il - range.first), ws_,
          pool_};
      arch.forward_layer(f);
    }
    n_cached_ = pos0 + done + n;
  }
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

void Stage::truncate(int n_keep) {
  if (n_keep < 0) fail_argument("cannot keep {} positions", n_keep);
  if (n_keep < n_cached_) n_cached_ = n_keep;
}

}  // namespace herd::engine
