// deepseek2 (DeepSeek V2/V3, Kimi K2): multi-head latent attention and DeepSeekMoE
// (llama.cpp build_deepseek2).
//
// Attention: the query comes from a low-rank path (attn_q_a -> RMS norm -> attn_q_b) or a plain
// attn_q; keys and values from a compressed latent c = rms_norm(first kv_lora_rank of
// attn_kv_a_mqa x), expanded per head either by attn_kv_b (older files) or by the split
// attn_k_b / attn_v_b (newer files, where attn_k_b is stored transposed). The last n_rot outputs
// of attn_kv_a_mqa are a single rotary key shared by all heads. Each head's key is
// [k_nope (key_length - n_rot), k_rope (n_rot)].
// KV cache (f16, like every architecture's): with attn_kv_b we cache these full per-head K and V
// rows (n_head * (key_length + value_length) values per position); with attn_k_b / attn_v_b we
// absorb them into the query and the output (llama.cpp's MLA mode) and cache only the latent
// [c, k_rope] (kv_lora_rank + n_rot values per position: 576 instead of 40960 for DeepSeek V3).
//
// Feed-forward: leading_dense_block_count dense layers, then routed experts (softmax or sigmoid
// router; exp_probs_b biases the choice only; weights optionally normalised, then scaled by
// expert_weights_scale) plus expert_shared_count always-on shared experts.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "model/arch_registry.h"
#include "model/blocks.h"
#include "model/model.h"

namespace herd::model {

namespace {

using kernels::matmul;

int nope_dim(const HParams& hp) {
  return hp.head_dim_k - hp.n_rot;
}

// The heads of this tensor-parallel rank (all of them on one node).
int local_heads(const LayerForward& f) {
  const HParams& hp = f.model.hparams();
  return f.model.slice().n_head_kv * (hp.n_head / hp.n_head_kv);
}

class DeepSeek2 final : public Architecture {
 public:
  void check_hparams(const gguf::File& file, HParams& hp) const override {
    if (hp.kv_lora_rank <= 0) {
      fail_format("{}: deepseek2.attention.kv_lora_rank is missing or 0", file.path());
    }
    if (hp.n_rot <= 0 || hp.n_rot >= hp.head_dim_k) {
      fail_format("{}: deepseek2.rope.dimension_count ({}) must be below attention.key_length ({})",
                  file.path(), hp.n_rot, hp.head_dim_k);
    }
    bool has_kv_b = false, has_k_b = false;
    for (const auto& t : file.tensors()) {
      has_kv_b = has_kv_b || t.name.ends_with(".attn_kv_b.weight");
      has_k_b = has_k_b || t.name.ends_with(".attn_k_b.weight");
    }
    hp.mla_absorbed = has_k_b && !has_kv_b;
  }

  kernels::RopeConfig rope_config(const HParams& hp) const override {
    kernels::RopeConfig c = Architecture::rope_config(hp);
    // YaRN's magnitude correction is applied through the attention scale instead (see kq_scale),
    // so the rotation itself is divided by it again, as llama.cpp does for deepseek2.
    c.attn_factor = 1.0f / (1.0f + 0.1f * std::log(1.0f / hp.rope_freq_scale));
    return c;
  }

  KvWidth kv_width(const HParams& hp) const override {
    // Absorbed: one latent row [c (kv_lora_rank), k_rope (n_rot)] per position, also read as V.
    if (hp.mla_absorbed) return {hp.kv_lora_rank + hp.n_rot, 0, 1};
    return {static_cast<std::int64_t>(hp.n_head) * hp.head_dim_k,
            static_cast<std::int64_t>(hp.n_head) * hp.head_dim_v, hp.n_head};
  }

  void bind_layer(TensorBinder& b, const HParams& hp, int il, LayerWeights& w) const override {
    const std::int64_t q_dim = static_cast<std::int64_t>(hp.n_head) * hp.head_dim_k;
    w.attn_norm = b.vector(layer_tensor(il, "attn_norm.weight"), hp.n_embd);
    if (hp.q_lora_rank > 0) {
      w.wq_a = b.matrix(layer_tensor(il, "attn_q_a.weight"), hp.n_embd, hp.q_lora_rank);
      w.q_a_norm = b.vector(layer_tensor(il, "attn_q_a_norm.weight"), hp.q_lora_rank);
      w.wq_b = b.matrix(layer_tensor(il, "attn_q_b.weight"), hp.q_lora_rank, q_dim);
    } else {
      w.wq = b.matrix(layer_tensor(il, "attn_q.weight"), hp.n_embd, q_dim);
    }
    w.wkv_a_mqa =
        b.matrix(layer_tensor(il, "attn_kv_a_mqa.weight"), hp.n_embd, hp.kv_lora_rank + hp.n_rot);
    w.kv_a_norm = b.vector(layer_tensor(il, "attn_kv_a_norm.weight"), hp.kv_lora_rank);
    if (!hp.mla_absorbed) {
      w.wkv_b = b.matrix(layer_tensor(il, "attn_kv_b.weight"), hp.kv_lora_rank,
                         static_cast<std::int64_t>(hp.n_head) * (nope_dim(hp) + hp.head_dim_v));
    } else {
      // Newer converters split attn_kv_b: attn_k_b per head is [nope, kv_lora] (Wk_h transposed,
      // ready to absorb into the query), attn_v_b per head [kv_lora, head_dim_v].
      w.wk_b =
          b.stack(layer_tensor(il, "attn_k_b.weight"), nope_dim(hp), hp.kv_lora_rank, hp.n_head);
      w.wv_b =
          b.stack(layer_tensor(il, "attn_v_b.weight"), hp.kv_lora_rank, hp.head_dim_v, hp.n_head);
    }
    w.wo = b.matrix(layer_tensor(il, "attn_output.weight"),
                    static_cast<std::int64_t>(hp.n_head) * hp.head_dim_v, hp.n_embd);
    if (hp.is_moe_layer(il)) {
      bind_moe_ffn(b, hp, il, w, hp.n_ff_exp * std::max(1, hp.n_expert_shared), false);
    } else {
      bind_dense_ffn(b, hp, il, w);
    }
  }

  void forward_layer(const LayerForward& f) const override {
    attention_mla(f);
    const HParams& hp = f.model.hparams();
    feed_forward(f, {.gating = hp.expert_gating,
                     .normalize = hp.expert_weights_norm,
                     .scale = hp.expert_weights_scale});
  }

 protected:
  bool rope_neox() const override { return false; }

 private:
  void attention_mla(const LayerForward& f) const;
  void expand_latent(const LayerForward& f, const float* latent, std::int64_t ld_latent) const;
};

// Expanded form (files with attn_kv_b): writes each head's K = [k_nope, k_rope] and V rows of
// the new positions into the cache.
void DeepSeek2::expand_latent(const LayerForward& f, const float* latent,
                              std::int64_t ld_latent) const {
  const HParams& hp = f.model.hparams();
  const int n_head = local_heads(f);
  const int T = f.n_tokens;
  const int nope = nope_dim(hp);
  const std::int64_t width = static_cast<std::int64_t>(n_head) * (nope + hp.head_dim_v);
  float* kv = f.ws.floats(Workspace::kK, static_cast<std::size_t>(T) * width);
  matmul(f.w.wkv_b, latent, T, ld_latent, kv, width, f.pool);
  for (int t = 0; t < T; ++t) {
    const float* k_pe = latent + t * ld_latent + hp.kv_lora_rank;
    for (int h = 0; h < n_head; ++h) {
      const float* src = kv + t * width + static_cast<std::int64_t>(h) * (nope + hp.head_dim_v);
      const LayerKv& cache = f.kv_of(t);
      std::uint16_t* k = cache.k_at(h, f.positions[t]);
      kernels::f32_to_f16_row(src, k, nope);
      kernels::f32_to_f16_row(k_pe, k + nope, hp.n_rot);
      kernels::f32_to_f16_row(src + nope, cache.v_at(h, f.positions[t]), hp.head_dim_v);
    }
  }
}

void DeepSeek2::attention_mla(const LayerForward& f) const {
  const HParams& hp = f.model.hparams();
  const auto& w = f.w;
  const int T = f.n_tokens;
  const std::int64_t n_embd = hp.n_embd;
  float* proj = f.ws.floats(Workspace::kProj, static_cast<std::size_t>(T) * n_embd);
  // This rank's heads (all on one node); the latent is computed by every rank that has heads.
  const int n_head = local_heads(f);
  if (n_head == 0) {
    std::fill(proj, proj + T * n_embd, 0.0f);
    f.all_reduce(proj, T * n_embd);
    add_residual(f.hidden, proj, T * n_embd);
    return;
  }
  const int nope = nope_dim(hp);
  const int lora = hp.kv_lora_rank;
  const std::int64_t q_dim = static_cast<std::int64_t>(n_head) * hp.head_dim_k;
  const std::int64_t o_dim = static_cast<std::int64_t>(n_head) * hp.head_dim_v;
  const std::int64_t lat_dim = lora + hp.n_rot;

  float* x = f.ws.floats(Workspace::kNorm, static_cast<std::size_t>(T) * n_embd);
  for (int t = 0; t < T; ++t) {
    kernels::rms_norm(f.hidden + t * n_embd, w.attn_norm.data, x + t * n_embd, n_embd, hp.rms_eps);
  }
  float* q = f.ws.floats(Workspace::kQ, static_cast<std::size_t>(T) * q_dim);
  if (w.wq_a.data) {
    float* ql = f.ws.floats(Workspace::kQLora, static_cast<std::size_t>(T) * hp.q_lora_rank);
    matmul(w.wq_a, x, T, n_embd, ql, hp.q_lora_rank, f.pool);
    kernels::rms_norm_rows(ql, w.q_a_norm.data, T, hp.q_lora_rank, hp.q_lora_rank, hp.rms_eps);
    matmul(w.wq_b, ql, T, hp.q_lora_rank, q, q_dim, f.pool);
  } else {
    matmul(w.wq, x, T, n_embd, q, q_dim, f.pool);
  }
  // Absorbed: the finished latent rows [c, k_rope] are the cache rows (rounded to f16 below).
  float* latent = f.ws.floats(Workspace::kLatent, static_cast<std::size_t>(T) * lat_dim);
  const std::int64_t ld_lat = lat_dim;
  matmul(w.wkv_a_mqa, x, T, n_embd, latent, ld_lat, f.pool);
  kernels::rms_norm_rows(latent, w.kv_a_norm.data, T, lora, ld_lat, hp.rms_eps);

  const auto& rope = f.model.rope();
  float* cos_sin = f.ws.floats(Workspace::kRope, static_cast<std::size_t>(hp.n_rot));
  for (int t = 0; t < T; ++t) {
    kernels::rope_cos_sin(rope, f.positions[t], cos_sin);
    // The rotary part sits after the nope part of each query head.
    kernels::rope_apply(rope, cos_sin, q + t * q_dim + nope, n_head, hp.head_dim_k);
    kernels::rope_apply(rope, cos_sin, latent + t * ld_lat + lora, 1, hp.n_rot);
    if (hp.mla_absorbed) {
      kernels::f32_to_f16_row(latent + t * ld_lat, f.kv_of(t).k_at(0, f.positions[t]), lat_dim);
    }
  }

  // YaRN: the attention temperature grows with the context extension (DeepSeek's mscale).
  const float mscale =
      hp.rope_attn_factor * (1.0f + hp.rope_yarn_log_mul * std::log(1.0f / hp.rope_freq_scale));
  // Filled per run below: each sequence attends over its own cache.
  kernels::AttentionArgs a;
  a.n_head = n_head;
  a.scale = mscale * mscale / std::sqrt(static_cast<float>(hp.head_dim_k));
  float* attn = f.ws.floats(Workspace::kAttnOut, static_cast<std::size_t>(T) * o_dim);

  if (hp.mla_absorbed) {
    // q_nope . (Wk_h c) = (Wk_h^T q_nope) . c: each head's query moves into the latent space and
    // all heads share one K row [c, k_rope]; V is c itself, expanded by Wv_h after the sum.
    float* qa =
        f.ws.floats(Workspace::kQAbsorbed, static_cast<std::size_t>(T) * n_head * lat_dim);
    const std::int64_t qa_stride = static_cast<std::int64_t>(n_head) * lat_dim;
    for (int h = 0; h < n_head; ++h) {
      matmul(w.wk_b.at(h), q + h * hp.head_dim_k, T, q_dim, qa + h * lat_dim, qa_stride, f.pool);
      for (int t = 0; t < T; ++t) {
        std::memcpy(qa + t * qa_stride + h * lat_dim + lora,
                    q + t * q_dim + h * hp.head_dim_k + nope, hp.n_rot * sizeof(float));
      }
    }
    const std::int64_t lo_stride = static_cast<std::int64_t>(n_head) * lora;
    float* lo = f.ws.floats(Workspace::kLatentOut, static_cast<std::size_t>(T) * lo_stride);
    a.q_stride = qa_stride;
    a.out_stride = lo_stride;
    a.n_head_kv = 1;
    a.head_dim_k = static_cast<int>(lat_dim);
    a.head_dim_v = lora;
    attend_runs(f, a, qa, lo, /*latent_kv=*/true);
    for (int h = 0; h < n_head; ++h) {
      matmul(w.wv_b.at(h), lo + h * lora, T, lo_stride, attn + h * hp.head_dim_v, o_dim, f.pool);
    }
  } else {
    expand_latent(f, latent, ld_lat);
    a.q_stride = q_dim;
    a.out_stride = o_dim;
    a.n_head_kv = n_head;
    a.head_dim_k = hp.head_dim_k;
    a.head_dim_v = hp.head_dim_v;
    attend_runs(f, a, q, attn);
  }

  matmul(w.wo, attn, T, o_dim, proj, n_embd, f.pool);
  f.all_reduce(proj, T * n_embd);
  add_residual(f.hidden, proj, T * n_embd);
}

}  // namespace

const Architecture& deepseek2_architecture() {
  static const DeepSeek2 arch;
  return arch;
}

}  // namespace herd::model
