// Views of a model's weights inside the mapped GGUF file (never copies of matrices), and the
// binder that finds them, checks their shapes against the hyper-parameters, and reports a
// missing or misshapen tensor as a FormatError naming it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/reader.h"
#include "kernels/matmul.h"

namespace herd::model {

using kernels::Matrix;

// A 1-D f32 tensor (norm scale, bias). Null data when the tensor is absent.
struct Vector {
  const float* data = nullptr;
  std::int64_t n = 0;
  explicit operator bool() const { return data != nullptr; }
};

// A 3-D tensor seen as `count` matrices of the same shape (experts of a MoE layer, heads of
// DeepSeek's attn_k_b / attn_v_b), matrix i at first.data + i * stride bytes.
struct MatrixStack {
  Matrix first;
  int count = 0;
  std::size_t stride = 0;
  explicit operator bool() const { return first.data != nullptr; }
  Matrix at(int i) const {
    Matrix m = first;
    m.data = static_cast<const std::uint8_t*>(first.data) + static_cast<std::size_t>(i) * stride;
    return m;
  }
};

// Every tensor a layer of a supported architecture may have; an architecture binds the ones it
// uses (the others stay null). Shapes in GGML order [cols, rows].
struct LayerWeights {
  Vector attn_norm;       // [n_embd]
  Matrix wq, wk, wv;      // [n_embd, n_head * head_dim_k] ... (k/v: n_head_kv heads)
  Vector bq, bk, bv;      // qwen2 biases
  Vector q_norm, k_norm;  // qwen3 QK-norm [head_dim_k]
  Matrix wo;              // [n_head * head_dim_v, n_embd]

  // Multi-head latent attention (deepseek2).
  Matrix wq_a;       // [n_embd, q_lora_rank]
  Vector q_a_norm;   // [q_lora_rank]
  Matrix wq_b;       // [q_lora_rank, n_head * head_dim_k]
  Matrix wkv_a_mqa;  // [n_embd, kv_lora_rank + n_rot]
  Vector kv_a_norm;  // [kv_lora_rank]
  Matrix wkv_b;      // [kv_lora_rank, n_head * (nope + head_dim_v)] (older files)
  MatrixStack wk_b;  // n_head x [nope, kv_lora_rank] (newer files)
  MatrixStack wv_b;  // n_head x [kv_lora_rank, head_dim_v] (newer files)

  Vector ffn_norm;          // [n_embd]
  Matrix ffn_gate, ffn_up;  // [n_embd, n_ff]
  Matrix ffn_down;          // [n_ff, n_embd]

  Matrix gate_inp;                 // router [n_embd, n_expert]
  Vector exp_probs_b;              // [n_expert] selection bias (deepseek v3)
  MatrixStack gate_exps, up_exps;  // n_expert x [n_embd, n_ff_exp]
  MatrixStack down_exps;           // n_expert x [n_ff_exp, n_embd]
  Matrix gate_shexp, up_shexp;     // [n_embd, n_ff_shexp]
  Matrix down_shexp;               // [n_ff_shexp, n_embd]
  Matrix gate_inp_shexp;           // [n_embd, 1] qwen2moe shared-expert gate
};

enum class Need { kRequired, kOptional };

// "blk.3.attn_q.weight"
std::string layer_tensor(int il, std::string_view suffix);

class TensorBinder {
 public:
  // `owned` keeps f32 copies of the few 1-D tensors stored in another type (norms are tiny).
  TensorBinder(const gguf::File& file, std::vector<std::unique_ptr<std::vector<float>>>& owned);

  bool has(std::string_view name) const { return file_.find_tensor(name) != nullptr; }
  Matrix matrix(std::string_view name, std::int64_t cols, std::int64_t rows,
                Need need = Need::kRequired);
  Vector vector(std::string_view name, std::int64_t n, Need need = Need::kRequired);
  MatrixStack stack(std::string_view name, std::int64_t cols, std::int64_t rows, int count,
                    Need need = Need::kRequired);
  // Bytes of the tensors bound so far.
  std::size_t bytes() const { return bytes_; }

 private:
  const gguf::TensorInfo* find(std::string_view name, Need need) const;
  void check_shape(const gguf::TensorInfo& t, std::vector<std::int64_t> expected) const;
  Matrix view(const gguf::TensorInfo& t, std::int64_t cols, std::int64_t rows) const;

  const gguf::File& file_;
  std::vector<std::unique_ptr<std::vector<float>>>& owned_;
  std::size_t bytes_ = 0;
};

}  // namespace herd::model
