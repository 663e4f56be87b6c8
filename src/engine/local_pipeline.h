// The whole model in this process: one Stage over all layers.
#pragma once

#include <memory>

#include "engine/pipeline.h"
#include "engine/stage.h"

namespace herd::engine {

class LocalPipeline final : public Pipeline {
 public:
  LocalPipeline(std::shared_ptr<const model::Model> model, int n_ctx, ThreadPool& pool);

  void forward(std::span<const std::int32_t> tokens, std::int32_t pos0, bool all_logits,
               std::vector<float>& logits) override;
  void truncate(std::int32_t n_keep) override { stage_.truncate(n_keep); }
  std::int32_t n_ctx() const override { return stage_.n_ctx(); }
  std::int32_t n_vocab() const override { return stage_.model().n_vocab(); }

 private:
  Stage stage_;
  std::vector<float> hidden_;       // [micro-batch tokens, n_embd]
  std::vector<float> head_logits_;  // one micro-batch's logits when all are asked for
};

}  // namespace herd::engine
