#include "engine/pipeline.h"

#include "util/error.h"

namespace herd::engine {

void Pipeline::submit(const Batch& batch) {
  std::vector<float> logits;
  run(batch, logits);
  done_.push_back(std::move(logits));
}

void Pipeline::collect(std::vector<float>& logits) {
  HERD_CHECK(!done_.empty());
  logits = std::move(done_.front());
  done_.pop_front();
}

void Pipeline::forward(std::span<const std::int32_t> tokens, std::int32_t pos0, bool all_logits,
                       std::vector<float>& logits) {
  if (tokens.empty()) fail_argument("forward needs at least one token");
  Batch batch;
  batch.add(0, pos0, tokens, true);
  batch.all_logits = all_logits;
  run(batch, logits);
}

}  // namespace herd::engine
