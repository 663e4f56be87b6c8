// qwen3: llama-like blocks with NEOX RoPE and RMS norms of each query and key head before the
// rotation (QK-norm); head size is independent of n_embd. qwen3moe: routed experts only,
// softmax router with the chosen weights renormalised (llama.cpp build_qwen3 / build_qwen3moe).
#include "model/arch_registry.h"
#include "model/blocks.h"

namespace herd::model {

namespace {

class Qwen3 final : public Architecture {
 public:
  explicit Qwen3(bool moe) : moe_(moe) {}

  void bind_layer(TensorBinder& b, const HParams& hp, int il, LayerWeights& w) const override {
    bind_attention(b, hp, il, w, {.qk_norm = true});
    if (moe_) {
      bind_moe_ffn(b, hp, il, w, 0, false);
    } else {
      bind_dense_ffn(b, hp, il, w);
    }
  }

  void forward_layer(const LayerForward& f) const override {
    attention_gqa(f);
    feed_forward(f, {.gating = ExpertGating::kSoftmax, .normalize = true, .scale = 0.0f});
  }

  void check_hparams(const gguf::File& file, HParams& hp) const override {
    if (moe_ && hp.n_expert == 0) fail_format("{}: qwen3moe.expert_count is missing", file.path());
  }

 protected:
  bool rope_neox() const override { return true; }

 private:
  bool moe_;
};

}  // namespace

const Architecture& qwen3_architecture() {
  static const Qwen3 arch(false);
  return arch;
}

const Architecture& qwen3moe_architecture() {
  static const Qwen3 arch(true);
  return arch;
}

}  // namespace herd::model
