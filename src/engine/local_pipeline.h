// The whole model in this process: one Stage over all layers.
#pragma once

#include <memory>

#include "engine/pipeline.h"
#include "engine/stage.h"

namespace herd::engine {

class LocalPipeline final : public Pipeline {
 public:
  // reducer: for a model holding a tensor slice, as engine::Stage.
  LocalPipeline(std::shared_ptr<const model::Model> model, int n_ctx, ThreadPool& pool,
                int n_seqs = 1, model::Reducer* reducer = nullptr);

  void run(const Batch& batch, std::vector<float>& logits) override;
  void forget(std::int32_t seq, std::int32_t n_keep) override { stage_.truncate(seq, n_keep); }
  void copy_prefix(std::int32_t src, std::int32_t dst, std::int32_t n) override {
    stage_.copy_prefix(src, dst, n);
  }
  std::int32_t n_ctx() const override { return stage_.n_ctx(); }
  std::int32_t n_vocab() const override { return stage_.model().n_vocab(); }
  std::int32_t n_seqs() const override { return stage_.n_seqs(); }

 private:
  Stage stage_;
  std::vector<float> hidden_;       // [micro-batch tokens, n_embd]
  std::vector<float> head_logits_;  // one micro-batch's logits
};

}  // namespace herd::engine
