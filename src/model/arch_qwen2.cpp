// qwen2: llama-like blocks with Q/K/V biases and NEOX RoPE. qwen2moe adds routed experts
// (softmax router, weights NOT renormalised) plus a shared expert scaled by a sigmoid gate
// (llama.cpp build_qwen2 / build_qwen2moe).
#include "model/arch_registry.h"
#include "model/blocks.h"

namespace herd::model {

namespace {

class Qwen2 final : public Architecture {
 public:
  explicit Qwen2(bool moe) : moe_(moe) {}

  void bind_layer(TensorBinder& b, const HParams& hp, int il, LayerWeights& w) const override {
    bind_attention(b, hp, il, w, {.biases = true});
    if (moe_) {
      const int n_ff_shared = hp.n_ff_shexp > 0 ? hp.n_ff_shexp : hp.n_ff;
      bind_moe_ffn(b, hp, il, w, n_ff_shared, true);
    } else {
      bind_dense_ffn(b, hp, il, w);
    }
  }

  void forward_layer(const LayerForward& f) const override {
    attention_gqa(f);
    feed_forward(f, {.gating = ExpertGating::kSoftmax, .normalize = false, .scale = 0.0f});
  }

  void check_hparams(const gguf::File& file, HParams& hp) const override {
    if (moe_ && hp.n_expert == 0) fail_format("{}: qwen2moe.expert_count is missing", file.path());
  }

 protected:
  bool rope_neox() const override { return true; }

 private:
  bool moe_;
};

}  // namespace

const Architecture& qwen2_architecture() {
  static const Qwen2 arch(false);
  return arch;
}

const Architecture& qwen2moe_architecture() {
  static const Qwen2 arch(true);
  return arch;
}

}  // namespace herd::model
