// llama (Llama 1/2/3, Mistral, SmolLM ...): pre-norm blocks of GQA attention with normal
// (adjacent-pair) RoPE and a SwiGLU feed-forward; Mixtral-style MoE when expert_count is set
// (softmax router, chosen weights renormalised, as llama.cpp's build_llama).
#include "model/arch_registry.h"
#include "model/blocks.h"

namespace herd::model {

namespace {

class Llama final : public Architecture {
 public:
  void bind_layer(TensorBinder& b, const HParams& hp, int il, LayerWeights& w) const override {
    bind_attention(b, hp, il, w, {});
    if (hp.n_expert > 0) {
      bind_moe_ffn(b, hp, il, w, 0, false);
    } else {
      bind_dense_ffn(b, hp, il, w);
    }
  }

  void forward_layer(const LayerForward& f) const override {
    attention_gqa(f);
    feed_forward(f, {.gating = ExpertGating::kSoftmax, .normalize = true, .scale = 0.0f});
  }

 protected:
  bool rope_neox() const override { return false; }
};

}  // namespace

const Architecture& llama_architecture() {
  static const Llama arch;
  return arch;
}

}  // namespace herd::model
