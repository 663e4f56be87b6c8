#include "model/hparams.h"

#include <fmt/format.h>

#include "util/error.h"

namespace herd::model {

namespace {

class Keys {
 public:
  Keys(const gguf::Metadata& md, std::string arch) : md_(md), arch_(std::move(arch)) {}
  std::string key(std::string_view suffix) const { return fmt::format("{}.{}", arch_, suffix); }

  int require_int(std::string_view suffix) const {
    const std::int64_t v = md_.require_int(key(suffix));
    return checked(suffix, v);
  }
  int get_int(std::string_view suffix, int fallback) const {
    const auto v = md_.get_int(key(suffix));
    return v ? checked(suffix, *v) : fallback;
  }
  float get_float(std::string_view suffix, float fallback) const {
    const auto v = md_.get_float(key(suffix));
    return v ? static_cast<float>(*v) : fallback;
  }
  bool get_bool(std::string_view suffix, bool fallback) const {
    const auto v = md_.get_bool(key(suffix));
    return v ? *v : fallback;
  }
  std::optional<std::string> get_string(std::string_view suffix) const {
    return md_.get_string(key(suffix));
  }

 private:
  int checked(std::string_view suffix, std::int64_t v) const {
    // Any sane hyper-parameter fits comfortably; a huge or negative one is a corrupt file.
    if (v < 0 || v > (std::int64_t{1} << 30)) {
      fail_format("metadata key {} has the value {}, which is out of range", key(suffix), v);
    }
    return static_cast<int>(v);
  }

  const gguf::Metadata& md_;
  std::string arch_;
};

void require_positive(const char* what, int value, const std::string& key) {
  if (value <= 0) fail_format("metadata key {} ({}) must be positive, got {}", key, what, value);
}

int vocab_size(const gguf::File& file) {
  for (const char* name : {"token_embd.weight", "output.weight"}) {
    if (const auto* t = file.find_tensor(name)) return static_cast<int>(t->dim(1));
  }
  if (auto tokens = file.metadata().get_string_array("tokenizer.ggml.tokens")) {
    return static_cast<int>(tokens->size());
  }
  const auto v = file.metadata().get_int(fmt::format("{}.vocab_size", file.architecture()));
  if (!v) {
    fail_format(
        "{}: cannot tell the vocabulary size (no token_embd.weight, output.weight, "
        "tokenizer.ggml.tokens or {}.vocab_size)",
        file.path(), file.architecture());
  }
  return static_cast<int>(*v);
}

}  // namespace

HParams read_common_hparams(const gguf::File& file) {
  HParams hp;
  hp.arch = file.architecture();
  hp.name = file.metadata().get_string("general.name").value_or("");
  const Keys k(file.metadata(), hp.arch);

  hp.n_layer = k.require_int("block_count");
  hp.n_embd = k.require_int("embedding_length");
  hp.n_head = k.require_int("attention.head_count");
  require_positive("layers", hp.n_layer, k.key("block_count"));
  require_positive("width", hp.n_embd, k.key("embedding_length"));
  require_positive("heads", hp.n_head, k.key("attention.head_count"));
  hp.n_ff = k.get_int("feed_forward_length", 0);
  hp.n_head_kv = k.get_int("attention.head_count_kv", hp.n_head);
  require_positive("KV heads", hp.n_head_kv, k.key("attention.head_count_kv"));
  if (hp.n_head % hp.n_head_kv != 0) {
    fail_format("{} ({}) is not a multiple of {} ({})", k.key("attention.head_count"), hp.n_head,
                k.key("attention.head_count_kv"), hp.n_head_kv);
  }
  hp.head_dim_k = k.get_int("attention.key_length", hp.n_embd / hp.n_head);
  hp.head_dim_v = k.get_int("attention.value_length", hp.n_embd / hp.n_head);
  hp.n_rot = k.get_int("rope.dimension_count", hp.head_dim_k);
  if (hp.n_rot % 2 != 0 || hp.n_rot > hp.head_dim_k) {
    fail_format("{} is {}, but it must be even and at most the key head size {}",
                k.key("rope.dimension_count"), hp.n_rot, hp.head_dim_k);
  }
  hp.n_ctx_train = k.get_int("context_length", 2048);
  hp.rms_eps = k.get_float("attention.layer_norm_rms_epsilon", 1e-5f);

  hp.rope_freq_base = k.get_float("rope.freq_base", 10000.0f);
  const std::string scaling = k.get_string("rope.scaling.type").value_or("none");
  float factor = k.get_float("rope.scaling.factor", 0.0f);
  if (factor == 0.0f) {
    // Older files state the scale directly.
    const float linear = k.get_float("rope.scale_linear", 0.0f);
    if (linear != 0.0f) factor = linear;
  }
  if (scaling == "linear") {
    hp.rope_scaling = RopeScaling::kLinear;
  } else if (scaling == "yarn") {
    hp.rope_scaling = RopeScaling::kYarn;
  } else if (scaling == "none" || scaling.empty()) {
    hp.rope_scaling = factor > 0.0f && factor != 1.0f ? RopeScaling::kLinear : RopeScaling::kNone;
  } else {
    fail_format("{} is \"{}\"; herd supports none, linear and yarn", k.key("rope.scaling.type"),
                scaling);
  }
  hp.rope_freq_scale = factor > 0.0f ? 1.0f / factor : 1.0f;
  hp.rope_attn_factor = k.get_float("rope.scaling.attn_factor", 1.0f);
  hp.rope_n_ctx_orig = k.get_int("rope.scaling.original_context_length", hp.n_ctx_train);
  hp.rope_yarn_log_mul = k.get_float("rope.scaling.yarn_log_multiplier", 0.0f);
  hp.has_rope_freqs = file.find_tensor("rope_freqs.weight") != nullptr;

  hp.n_expert = k.get_int("expert_count", 0);
  hp.n_expert_used = k.get_int("expert_used_count", 0);
  if (hp.n_expert > 0 && (hp.n_expert_used <= 0 || hp.n_expert_used > hp.n_expert)) {
    fail_format("{} is {} but {} is {}: it must be between 1 and the expert count",
                k.key("expert_used_count"), hp.n_expert_used, k.key("expert_count"), hp.n_expert);
  }
  hp.n_ff_exp = k.get_int("expert_feed_forward_length", hp.n_ff);
  hp.n_ff_shexp = k.get_int("expert_shared_feed_forward_length", 0);
  hp.n_expert_shared = k.get_int("expert_shared_count", 0);
  hp.n_layer_dense_lead = k.get_int("leading_dense_block_count", 0);
  hp.expert_weights_scale = k.get_float("expert_weights_scale", 0.0f);
  hp.expert_weights_norm = k.get_bool("expert_weights_norm", false);
  // 0 ("none") is what older DeepSeek V2 files imply; llama.cpp reads it as softmax.
  int gating = k.get_int("expert_gating_func", 1);
  if (gating == 0) gating = 1;
  if (gating != 1 && gating != 2) {
    fail_format("{} is {}; herd knows 1 (softmax) and 2 (sigmoid)", k.key("expert_gating_func"),
                gating);
  }
  hp.expert_gating = static_cast<ExpertGating>(gating);

  hp.q_lora_rank = k.get_int("attention.q_lora_rank", 0);
  hp.kv_lora_rank = k.get_int("attention.kv_lora_rank", 0);

  hp.n_vocab = vocab_size(file);
  require_positive("vocabulary", hp.n_vocab, "token_embd.weight");
  return hp;
}

}  // namespace herd::model
