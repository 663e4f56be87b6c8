#include "model/blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/attention.h"
#include "kernels/decode_shaped.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "tensor/type.h"
#include "util/error.h"

namespace herd::model {

using kernels::matmul;

void bind_attention(TensorBinder& b, const HParams& hp, int il, LayerWeights& w,
                    const AttentionOptions& o) {
  const std::int64_t q_dim = static_cast<std::int64_t>(hp.n_head) * hp.head_dim_k;
  const std::int64_t k_dim = static_cast<std::int64_t>(hp.n_head_kv) * hp.head_dim_k;
  const std::int64_t v_dim = static_cast<std::int64_t>(hp.n_head_kv) * hp.head_dim_v;
  const std::int64_t o_dim = static_cast<std::int64_t>(hp.n_head) * hp.head_dim_v;
  w.attn_norm = b.vector(layer_tensor(il, "attn_norm.weight"), hp.n_embd);
  w.wq = b.matrix(layer_tensor(il, "attn_q.weight"), hp.n_embd, q_dim);
  w.wk = b.matrix(layer_tensor(il, "attn_k.weight"), hp.n_embd, k_dim);
  w.wv = b.matrix(layer_tensor(il, "attn_v.weight"), hp.n_embd, v_dim);
  w.wo = b.matrix(layer_tensor(il, "attn_output.weight"), o_dim, hp.n_embd);
  // Biases are optional even where usual (llama.cpp loads them as optional too).
  w.bq = b.vector(layer_tensor(il, "attn_q.bias"), q_dim,
                  o.biases ? Need::kRequired : Need::kOptional);
  w.bk = b.vector(layer_tensor(il, "attn_k.bias"), k_dim,
                  o.biases ? Need::kRequired : Need::kOptional);
  w.bv = b.vector(layer_tensor(il, "attn_v.bias"), v_dim,
                  o.biases ? Need::kRequired : Need::kOptional);
  if (o.qk_norm) {
    w.q_norm = b.vector(layer_tensor(il, "attn_q_norm.weight"), hp.head_dim_k);
    w.k_norm = b.vector(layer_tensor(il, "attn_k_norm.weight"), hp.head_dim_k);
  }
}

void bind_dense_ffn(TensorBinder& b, const HParams& hp, int il, LayerWeights& w) {
  if (hp.n_ff <= 0) {
    fail_format("{}.feed_forward_length is missing or 0, but layer {} is a dense layer", hp.arch,
                il);
  }
  w.ffn_norm = b.vector(layer_tensor(il, "ffn_norm.weight"), hp.n_embd);
  w.ffn_gate = b.matrix(layer_tensor(il, "ffn_gate.weight"), hp.n_embd, hp.n_ff);
  w.ffn_up = b.matrix(layer_tensor(il, "ffn_up.weight"), hp.n_embd, hp.n_ff);
  w.ffn_down = b.matrix(layer_tensor(il, "ffn_down.weight"), hp.n_ff, hp.n_embd);
}

void bind_moe_ffn(TensorBinder& b, const HParams& hp, int il, LayerWeights& w, int n_ff_shared,
                  bool gated_shared) {
  if (hp.n_ff_exp <= 0) {
    fail_format("{}.expert_feed_forward_length is missing or 0 in a mixture-of-experts model",
                hp.arch);
  }
  const int n_exp = hp.n_expert;
  w.ffn_norm = b.vector(layer_tensor(il, "ffn_norm.weight"), hp.n_embd);
  w.gate_inp = b.matrix(layer_tensor(il, "ffn_gate_inp.weight"), hp.n_embd, n_exp);
  w.exp_probs_b = b.vector(layer_tensor(il, "exp_probs_b.bias"), n_exp, Need::kOptional);
  w.gate_exps = b.stack(layer_tensor(il, "ffn_gate_exps.weight"), hp.n_embd, hp.n_ff_exp, n_exp);
  w.up_exps = b.stack(layer_tensor(il, "ffn_up_exps.weight"), hp.n_embd, hp.n_ff_exp, n_exp);
  w.down_exps = b.stack(layer_tensor(il, "ffn_down_exps.weight"), hp.n_ff_exp, hp.n_embd, n_exp);
  if (n_ff_shared > 0) {
    w.gate_shexp = b.matrix(layer_tensor(il, "ffn_gate_shexp.weight"), hp.n_embd, n_ff_shared);
    w.up_shexp = b.matrix(layer_tensor(il, "ffn_up_shexp.weight"), hp.n_embd, n_ff_shared);
    w.down_shexp = b.matrix(layer_tensor(il, "ffn_down_shexp.weight"), n_ff_shared, hp.n_embd);
    if (gated_shared) {
      w.gate_inp_shexp = b.matrix(layer_tensor(il, "ffn_gate_inp_shexp.weight"), hp.n_embd, 1);
    }
  }
}

void add_residual(float* hidden, const float* delta, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) hidden[i] += delta[i];
}

void add_bias(float* y, const Vector& b, int n_tokens, std::int64_t ld) {
  if (!b) return;
  for (int t = 0; t < n_tokens; ++t) {
    float* row = y + t * ld;
    for (std::int64_t i = 0; i < b.n; ++i) row[i] += b.data[i];
  }
}

namespace {

// Fewest tokens per task when per-token work is split over the pool.
constexpr std::int64_t kTokensPerTask = 16;

// dst[t] = rms_norm(hidden[t]) * w for each token.
float* normed_input(const LayerForward& f, const Vector& w) {
  const int n_embd = f.model.n_embd();
  float* x = f.ws.floats(Workspace::kNorm, static_cast<std::size_t>(f.n_tokens) * n_embd);
  // Split over the pool in a batch: serial per-token work would idle the other cores of a
  // prefill that is otherwise parallel (a single token stays on the calling thread).
  f.pool.parallel_for(f.n_tokens, kTokensPerTask, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t t = begin; t < end; ++t) {
      kernels::rms_norm(f.hidden + t * n_embd, w.data, x + t * n_embd, n_embd,
                        f.model.hparams().rms_eps);
    }
  });
  return x;
}

// out[T, n_embd] = down(swiglu(gate x, up x)), the gate/up buffers sized for `width`.
//
// A long batch runs the hidden dimension in two halves, the second half's down-projection added
// to the first's: the gate/up activations (2 * T * width floats, 16 MiB for 256 tokens of a 1B
// model) are the largest scratch of a prompt, and halving them keeps resident memory within 10%
// of weights + KV cache. Each half is still a GEMM over all T tokens, so prefill speed moved only
// within noise (1B model, pp512: -2% to +1%); decode and short batches take one pass.
void swiglu_ffn(const LayerForward& f, const Matrix& gate, const Matrix& up, const Matrix& down,
                const float* x, int n_tokens, float* out, Workspace::Slot gate_slot,
                Workspace::Slot up_slot) {
  const std::int64_t n_embd = f.model.n_embd();
  const std::int64_t width = gate.rows;
  if (width == 0) {  // a tensor-parallel rank without columns of this feed-forward
    std::fill(out, out + n_tokens * n_embd, 0.0f);
    return;
  }
  // (Decode-shaped batches take one pass: the halves' sum rounds differently from a decode step.)
  const bool split = n_tokens >= kFfnSplitTokens && width % 2 == 0 &&
                     (width / 2) % tensor::traits(down.type).block_size == 0 &&
                     !kernels::decode_shaped();
  const std::int64_t part = split ? width / 2 : width;
  float* g = f.ws.floats(gate_slot, static_cast<std::size_t>(n_tokens) * part);
  float* u = f.ws.floats(up_slot, static_cast<std::size_t>(n_tokens) * part);
  float* partial =
      split ? f.ws.floats(Workspace::kDownPartial, static_cast<std::size_t>(n_tokens) * n_embd)
            : nullptr;
  for (std::int64_t c0 = 0; c0 < width; c0 += part) {
    const Matrix gate_part{gate.type, gate.row(c0), part, gate.cols, gate.row_stride};
    const Matrix up_part{up.type, up.row(c0), part, up.cols, up.row_stride};
    const Matrix down_part{down.type, down.row(0) + tensor::row_bytes(down.type, c0), down.rows,
                           part, down.row_stride};
    const kernels::Product gate_up[] = {{&gate_part, g, part}, {&up_part, u, part}};
    kernels::matmul_shared_input(gate_up, x, n_tokens, n_embd, f.pool);
    kernels::swiglu(g, u, g, n_tokens * part);
    matmul(down_part, g, n_tokens, part, c0 == 0 ? out : partial, n_embd, f.pool);
    if (c0 > 0) add_residual(out, partial, n_tokens * n_embd);
  }
}

// Router: per token, the chosen experts and their weights (llama.cpp build_moe_ffn).
void route(const LayerForward& f, const MoeOptions& o, const float* x, std::int32_t* ids,
           float* weights) {
  const HParams& hp = f.model.hparams();
  const int n_exp = hp.n_expert;
  const int k = hp.n_expert_used;
  float* logits = f.ws.floats(Workspace::kRouter, static_cast<std::size_t>(f.n_tokens) * n_exp * 2);
  float* select = logits + static_cast<std::size_t>(f.n_tokens) * n_exp;
  matmul(f.w.gate_inp, x, f.n_tokens, hp.n_embd, logits, n_exp, f.pool);
  for (int t = 0; t < f.n_tokens; ++t) {
    float* probs = logits + t * n_exp;
    float* sel = select + t * n_exp;
    if (o.gating == ExpertGating::kSoftmax) {
      kernels::softmax(probs, n_exp);
    } else {
      for (int e = 0; e < n_exp; ++e) probs[e] = kernels::sigmoid(probs[e]);
    }
    // The selection bias (DeepSeek V3) only changes which experts are chosen, not their weights.
    for (int e = 0; e < n_exp; ++e)
      sel[e] = probs[e] + (f.w.exp_probs_b ? f.w.exp_probs_b.data[e] : 0.0f);
    std::int32_t* tid = ids + t * k;
    float* tw = weights + t * k;
    for (int j = 0; j < k; ++j) {
      int best = -1;
      for (int e = 0; e < n_exp; ++e) {
        if (std::find(tid, tid + j, e) != tid + j) continue;
        if (best < 0 || sel[e] > sel[best]) best = e;
      }
      tid[j] = best;
      tw[j] = probs[best];
    }
    if (o.normalize) {
      float sum = 0.0f;
      for (int j = 0; j < k; ++j) sum += tw[j];
      for (int j = 0; j < k; ++j) tw[j] /= sum;
    }
    if (o.scale != 0.0f) {
      for (int j = 0; j < k; ++j) tw[j] *= o.scale;
    }
  }
}

void moe_ffn(const LayerForward& f, const MoeOptions& o, const float* x, float* out) {
  const HParams& hp = f.model.hparams();
  const int n_tokens = f.n_tokens;
  const int k = hp.n_expert_used;
  const std::int64_t n_embd = hp.n_embd;
  std::int32_t* ids = f.ws.ints(Workspace::kRouteIds, static_cast<std::size_t>(n_tokens) * k);
  float* weights = f.ws.floats(Workspace::kRouteWeights, static_cast<std::size_t>(n_tokens) * k);
  route(f, o, x, ids, weights);

  std::fill(out, out + n_tokens * n_embd, 0.0f);
  std::int32_t* slots = f.ws.ints(Workspace::kExpertTokens, static_cast<std::size_t>(n_tokens));
  float* in = f.ws.floats(Workspace::kExpertIn, static_cast<std::size_t>(n_tokens) * n_embd);
  float* res = f.ws.floats(Workspace::kProj, static_cast<std::size_t>(n_tokens) * n_embd);
  // The experts this rank holds (all of them on one node): local e is expert expert0 + e.
  const int expert0 = f.model.slice().expert0;
  for (int e = 0; e < f.w.gate_exps.count; ++e) {
    // Gather the tokens routed to expert e (slot = t * k + j) and run them as one batch.
    int m = 0;
    for (int s = 0; s < n_tokens * k; ++s) {
      if (ids[s] == expert0 + e) slots[m++] = s;
    }
    if (m == 0) continue;
    for (int i = 0; i < m; ++i) {
      std::memcpy(in + i * n_embd, x + (slots[i] / k) * n_embd, n_embd * sizeof(float));
    }
    swiglu_ffn(f, f.w.gate_exps.at(e), f.w.up_exps.at(e), f.w.down_exps.at(e), in, m, res,
               Workspace::kExpertGate, Workspace::kExpertUp);
    for (int i = 0; i < m; ++i) {
      const float wgt = weights[slots[i]];
      float* dst = out + (slots[i] / k) * n_embd;
      const float* src = res + i * n_embd;
      for (std::int64_t c = 0; c < n_embd; ++c) dst[c] += wgt * src[c];
    }
  }

  if (f.w.gate_shexp.rows > 0) {
    swiglu_ffn(f, f.w.gate_shexp, f.w.up_shexp, f.w.down_shexp, x, n_tokens, res, Workspace::kGate,
               Workspace::kUp);
    float* gate = nullptr;
    if (f.w.gate_inp_shexp.data) {
      gate = f.ws.floats(Workspace::kShexpGate, static_cast<std::size_t>(n_tokens));
      matmul(f.w.gate_inp_shexp, x, n_tokens, n_embd, gate, 1, f.pool);
    }
    for (int t = 0; t < n_tokens; ++t) {
      const float g = gate ? kernels::sigmoid(gate[t]) : 1.0f;
      for (std::int64_t c = 0; c < n_embd; ++c) out[t * n_embd + c] += g * res[t * n_embd + c];
    }
  }
}

}  // namespace

void attend_runs(const LayerForward& f, kernels::AttentionArgs a, const float* q, float* out,
                 bool latent_kv) {
  for (const SeqRun& run : f.runs) {
    a.q = q + run.first * a.q_stride;
    a.out = out + run.first * a.out_stride;
    a.k = run.kv.k;
    a.k_stride = run.kv.k_head_dim;
    a.k_head_stride = run.kv.k_head_stride;
    a.k_block = run.kv.k_block;
    a.v = latent_kv ? run.kv.k : run.kv.v;
    a.v_stride = latent_kv ? run.kv.k_head_dim : run.kv.v_head_dim;
    a.v_head_stride = latent_kv ? 0 : run.kv.v_head_stride;
    a.n_tokens = run.n_tokens;
    a.pos0 = run.pos0;
    a.scratch = f.ws.floats(Workspace::kScores, kernels::attention_scratch_floats(a, f.pool.size()));
    kernels::attention(a, f.pool);
  }
}

void attention_gqa(const LayerForward& f) {
  const HParams& hp = f.model.hparams();
  const auto& w = f.w;
  const int T = f.n_tokens;
  const std::int64_t n_embd = hp.n_embd;
  float* proj = f.ws.floats(Workspace::kProj, static_cast<std::size_t>(T) * n_embd);
  // This rank's heads (all of them on one node); the output projection gives its partial sum.
  const int n_head_kv = f.model.slice().n_head_kv;
  const int n_head = n_head_kv * (hp.n_head / hp.n_head_kv);
  if (n_head_kv == 0) {
    std::fill(proj, proj + T * n_embd, 0.0f);
    f.all_reduce(proj, T * n_embd);
    add_residual(f.hidden, proj, T * n_embd);
    return;
  }
  const std::int64_t q_dim = static_cast<std::int64_t>(n_head) * hp.head_dim_k;
  const std::int64_t o_dim = static_cast<std::int64_t>(n_head) * hp.head_dim_v;
  const float* x = normed_input(f, w.attn_norm);

  const std::int64_t k_dim = static_cast<std::int64_t>(n_head_kv) * hp.head_dim_k;
  const std::int64_t v_dim = static_cast<std::int64_t>(n_head_kv) * hp.head_dim_v;
  float* q = f.ws.floats(Workspace::kQ, static_cast<std::size_t>(T) * q_dim);
  // K and V are finished in f32 (bias, norm, rope), then rounded into their f16 cache rows.
  float* k = f.ws.floats(Workspace::kK, static_cast<std::size_t>(T) * k_dim);
  float* v = f.ws.floats(Workspace::kV, static_cast<std::size_t>(T) * v_dim);
  const kernels::Product qkv[] = {{&w.wq, q, q_dim}, {&w.wk, k, k_dim}, {&w.wv, v, v_dim}};
  kernels::matmul_shared_input(qkv, x, T, n_embd, f.pool);
  add_bias(q, w.bq, T, q_dim);
  add_bias(k, w.bk, T, k_dim);
  add_bias(v, w.bv, T, v_dim);

  const auto& rope = f.model.rope();
  float* cos_sin_all = f.ws.floats(Workspace::kRope, static_cast<std::size_t>(hp.n_rot) * T);
  f.pool.parallel_for(T, kTokensPerTask, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t t = begin; t < end; ++t) {
      float* cos_sin = cos_sin_all + t * hp.n_rot;
      float* qt = q + t * q_dim;
      float* kt = k + t * k_dim;
      if (w.q_norm)
        kernels::rms_norm_rows(qt, w.q_norm.data, n_head, hp.head_dim_k, hp.head_dim_k,
                               hp.rms_eps);
      if (w.k_norm)
        kernels::rms_norm_rows(kt, w.k_norm.data, n_head_kv, hp.head_dim_k, hp.head_dim_k,
                               hp.rms_eps);
      const int pos = f.positions[t];
      const LayerKv& kv = f.kv_of(static_cast<int>(t));
      kernels::rope_cos_sin(rope, pos, cos_sin);
      kernels::rope_apply(rope, cos_sin, qt, n_head, hp.head_dim_k);
      kernels::rope_apply(rope, cos_sin, kt, n_head_kv, hp.head_dim_k);
      for (int g = 0; g < n_head_kv; ++g) {
        kernels::f32_to_f16_strided(kt + g * hp.head_dim_k, kv.k_first(g, pos), hp.head_dim_k,
                                    kv.k_block);
        kernels::f32_to_f16_row(v + t * v_dim + g * hp.head_dim_v, kv.v_at(g, pos),
                                hp.head_dim_v);
      }
    }
  });

  float* attn = f.ws.floats(Workspace::kAttnOut, static_cast<std::size_t>(T) * o_dim);
  kernels::AttentionArgs a;
  a.q_stride = q_dim;
  a.out_stride = o_dim;
  a.n_head = n_head;
  a.n_head_kv = n_head_kv;
  a.head_dim_k = hp.head_dim_k;
  a.head_dim_v = hp.head_dim_v;
  a.scale = 1.0f / std::sqrt(static_cast<float>(hp.head_dim_k));
  attend_runs(f, a, q, attn);

  matmul(w.wo, attn, T, o_dim, proj, n_embd, f.pool);
  f.all_reduce(proj, T * n_embd);
  add_residual(f.hidden, proj, T * n_embd);
}

void feed_forward(const LayerForward& f, const MoeOptions& moe) {
  const std::int64_t n_embd = f.model.n_embd();
  const int T = f.n_tokens;
  const float* x = normed_input(f, f.w.ffn_norm);
  // A MoE layer has a router (a tensor-parallel rank may hold none of its experts).
  if (f.w.gate_inp.data) {
    float* out = f.ws.floats(Workspace::kExpertOut, static_cast<std::size_t>(T) * n_embd);
    moe_ffn(f, moe, x, out);
    f.all_reduce(out, T * n_embd);
    add_residual(f.hidden, out, T * n_embd);
  } else {
    float* out = f.ws.floats(Workspace::kProj, static_cast<std::size_t>(T) * n_embd);
    swiglu_ffn(f, f.w.ffn_gate, f.w.ffn_up, f.w.ffn_down, x, T, out, Workspace::kGate,
               Workspace::kUp);
    f.all_reduce(out, T * n_embd);
    add_residual(f.hidden, out, T * n_embd);
  }
}

}  // namespace herd::model
