#include "model/synthetic_model.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "gguf/reader.h"
#include "gguf/writer.h"
#include "util/error.h"

namespace herd::model {
namespace {

// xorshift64*: fast, deterministic across platforms (std distributions are not).
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  float uniform() {  // [-1, 1)
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    std::uint64_t v = state_ * 0x2545F4914F6CDD1Dull;
    return static_cast<float>(v >> 40) * (2.0f / 16777216.0f) - 1.0f;
  }

 private:
  std::uint64_t state_;
};

// Weights ~ U(-a, a) with the variance of a 1/sqrt(fan_in) initialisation, so activations
// keep their scale through the layers and the logits stay finite.
std::vector<float> random_matrix(Random& rng, std::int64_t cols, std::int64_t rows) {
  std::vector<float> v(static_cast<std::size_t>(cols * rows));
  float a = std::sqrt(3.0f / static_cast<float>(cols));
  for (auto& x : v) x = rng.uniform() * a;
  return v;
}

std::vector<float> norm_weight(Random& rng, std::int64_t n) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = 1.0f + 0.1f * rng.uniform();
  return v;
}

void write_builtin_vocab(gguf::Writer& w) {
  // <unk>, <s>, </s>, then one byte-fallback token per byte value (SentencePiece style).
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0.0f, 0.0f, 0.0f};
  std::vector<std::int32_t> types = {2, 3, 3};  // unknown, control, control
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    tokens.emplace_back(buf);
    scores.push_back(0.0f);
    types.push_back(6);  // byte
  }
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_f32_array("tokenizer.ggml.scores", scores);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
}

std::int64_t copy_vocab(gguf::Writer& w, const gguf::Metadata& source) {
  for (const auto& [key, value] : source.entries()) {
    if (key.rfind("tokenizer.", 0) == 0) w.set(key, value);
  }
  auto tokens = source.get_string_array("tokenizer.ggml.tokens");
  if (!tokens || tokens->empty()) fail("tokenizer source has no tokenizer.ggml.tokens");
  return static_cast<std::int64_t>(tokens->size());
}

// llama.cpp's use_more_bits(i_layer, n_layers) (llama-quant.cpp).
bool uses_more_bits(int il, int n_layer) {
  return il < n_layer / 8 || il >= 7 * n_layer / 8 || (il - n_layer / 8) % 3 == 2;
}

}  // namespace

SyntheticSpec llama_1b_spec(tensor::Type type) {
  SyntheticSpec s;
  s.name = "synthetic-llama-1b";
  s.n_embd = 2048;
  s.n_layer = 16;
  s.n_head = 32;
  s.n_kv_head = 8;
  s.n_ff = 8192;
  s.n_ctx = 4096;
  s.rope_base = 500000.0f;
  s.type = type;
  return s;
}

void write_synthetic_model(const SyntheticSpec& spec, const std::string& path,
                           const gguf::Metadata* tokenizer_source,
                           const SyntheticProgress& progress) {
  if (spec.n_embd % spec.n_head != 0 || spec.n_head % spec.n_kv_head != 0)
    fail_argument("synthetic model: n_embd must divide by n_head and n_head by n_kv_head");
  const auto& traits = tensor::traits(spec.type);
  if (!traits.quantize) fail_argument("synthetic model: herd cannot write type {}", traits.name);
  if (spec.n_embd % traits.block_size != 0 || spec.n_ff % traits.block_size != 0)
    fail_argument("synthetic model: dimensions must be multiples of {}'s block size {}",
                  traits.name, traits.block_size);

  gguf::Writer w;
  const std::string a = "llama";
  const int head_dim = spec.n_embd / spec.n_head;
  w.set_string("general.architecture", a);
  w.set_string("general.name", spec.name);
  w.set_u32(a + ".context_length", spec.n_ctx);
  w.set_u32(a + ".embedding_length", spec.n_embd);
  w.set_u32(a + ".block_count", spec.n_layer);
  w.set_u32(a + ".feed_forward_length", spec.n_ff);
  w.set_u32(a + ".attention.head_count", spec.n_head);
  w.set_u32(a + ".attention.head_count_kv", spec.n_kv_head);
  w.set_u32(a + ".rope.dimension_count", head_dim);
  w.set_f32(a + ".rope.freq_base", spec.rope_base);
  w.set_f32(a + ".attention.layer_norm_rms_epsilon", 1e-5f);
  std::int64_t n_vocab = 259;
  if (tokenizer_source) {
    n_vocab = copy_vocab(w, *tokenizer_source);
  } else {
    write_builtin_vocab(w);
  }
  // The vocabulary size need not be a multiple of the block size: rows are n_embd long.
  const std::int64_t e = spec.n_embd, f = spec.n_ff, kv = spec.n_kv_head * head_dim;
  const int total = 3 + 9 * spec.n_layer;
  int done = 0;
  auto step = [&] {
    if (progress) progress(++done, total);
  };
  Random rng(spec.seed);
  w.add_tensor_f32("token_embd.weight", spec.type, {e, n_vocab}, random_matrix(rng, e, n_vocab));
  step();
  for (int l = 0; l < spec.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    w.add_tensor_f32(p + "attn_norm.weight", tensor::Type::kF32, {e}, norm_weight(rng, e));
    w.add_tensor_f32(p + "attn_q.weight", spec.type, {e, e}, random_matrix(rng, e, e));
    w.add_tensor_f32(p + "attn_k.weight", spec.type, {e, kv}, random_matrix(rng, e, kv));
    const tensor::Type more =
        spec.q4_k_m_mix && uses_more_bits(l, spec.n_layer) ? tensor::Type::kQ6_K : spec.type;
    w.add_tensor_f32(p + "attn_v.weight", more, {e, kv}, random_matrix(rng, e, kv));
    w.add_tensor_f32(p + "attn_output.weight", spec.type, {e, e}, random_matrix(rng, e, e));
    w.add_tensor_f32(p + "ffn_norm.weight", tensor::Type::kF32, {e}, norm_weight(rng, e));
    w.add_tensor_f32(p + "ffn_gate.weight", spec.type, {e, f}, random_matrix(rng, e, f));
    w.add_tensor_f32(p + "ffn_up.weight", spec.type, {e, f}, random_matrix(rng, e, f));
    w.add_tensor_f32(p + "ffn_down.weight", more, {f, e}, random_matrix(rng, f, e));
    for (int i = 0; i < 9; ++i) step();
  }
  w.add_tensor_f32("output_norm.weight", tensor::Type::kF32, {e}, norm_weight(rng, e));
  step();
  const tensor::Type output_type = spec.q4_k_m_mix ? tensor::Type::kQ6_K : spec.type;
  w.add_tensor_f32("output.weight", output_type, {e, n_vocab}, random_matrix(rng, e, n_vocab));
  step();
  w.write(path);
}

}  // namespace herd::model
