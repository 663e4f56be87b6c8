#include "model/model.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <charconv>

#include "util/error.h"
#include "util/mapped_file.h"

namespace herd::model {

namespace {

// Layer index of "blk.N.xxx", or -1.
int layer_of(std::string_view name) {
  if (!name.starts_with("blk.")) return -1;
  name.remove_prefix(4);
  int il = -1;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), il);
  if (ec != std::errc() || end == name.data() + name.size() || *end != '.') return -1;
  return il;
}

std::string human_bytes(std::size_t n) {
  if (n >= (std::size_t{1} << 30)) return fmt::format("{:.2f} GiB", n / double(1 << 30));
  if (n >= (std::size_t{1} << 20)) return fmt::format("{:.2f} MiB", n / double(1 << 20));
  return fmt::format("{:.1f} KiB", n / 1024.0);
}

}  // namespace

std::shared_ptr<Model> Model::load(std::shared_ptr<const gguf::File> file,
                                   std::optional<LayerRange> range,
                                   std::optional<TensorShare> share) {
  HERD_CHECK(file != nullptr);
  std::shared_ptr<Model> m(new Model());
  m->file_ = file;
  m->hp_ = read_common_hparams(*file);
  m->arch_ = find_architecture(m->hp_.arch);
  if (!m->arch_) {
    fail_format("{}: architecture \"{}\" is not supported (herd knows: {})", file->path(),
                m->hp_.arch, fmt::join(architecture_names(), ", "));
  }
  m->arch_->check_hparams(*file, m->hp_);
  const HParams& hp = m->hp_;
  m->range_ = range.value_or(LayerRange{0, hp.n_layer});
  if (m->range_.first < 0 || m->range_.last > hp.n_layer || m->range_.first >= m->range_.last) {
    fail_argument("layer range [{}, {}) is not a non-empty part of the model's {} layers",
                  m->range_.first, m->range_.last, hp.n_layer);
  }

  m->slice_ = share ? tensor_slice(hp, share->weights, share->rank) : TensorSlice::all(hp);
  if (!m->slice_.whole() && (hp.n_head_kv <= 0 || hp.n_head % hp.n_head_kv != 0)) {
    fail_argument("{}: {} query heads do not group over {} KV heads, so it cannot be split",
                  file->path(), hp.n_head, hp.n_head_kv);
  }
  // Copied columns free the file's pages they came from (never memory that is not a mapping).
  ReleaseFn release;
  if (const MappedFile* mapping = file->mapping()) {
    release = [mapping](const void* data, std::size_t bytes) {
      const auto* p = static_cast<const std::uint8_t*>(data);
      if (p < mapping->data() || p + bytes > mapping->data() + mapping->size()) return;
      mapping->advise_dontneed(static_cast<std::size_t>(p - mapping->data()), bytes);
    };
  }

  TensorBinder b(*file, m->owned_);
  if (hp.has_rope_freqs) {
    const Vector f = b.vector("rope_freqs.weight", hp.n_rot / 2);
    m->rope_freqs_.assign(f.data, f.data + f.n);
  }
  if (m->has_embedding()) m->token_embd_ = b.matrix("token_embd.weight", hp.n_embd, hp.n_vocab);
  m->layers_.resize(m->range_.size());
  for (int il = m->range_.first; il < m->range_.last; ++il) {
    m->arch_->bind_layer(b, hp, il, m->layers_[il - m->range_.first]);
    slice_layer(hp, m->slice_, m->layers_[il - m->range_.first], m->owned_slices_, release);
  }
  if (m->has_head()) {
    m->output_norm_ = b.vector("output_norm.weight", hp.n_embd);
    m->output_ = b.matrix("output.weight", hp.n_embd, hp.n_vocab, Need::kOptional);
    if (!m->output_.data) {
      // Tied embeddings: the head multiplies by token_embd.
      m->output_ = b.matrix("token_embd.weight", hp.n_embd, hp.n_vocab);
      m->tied_output_ = true;
    }
  }

  m->rope_ = m->arch_->rope_config(hp);
  if (!m->rope_freqs_.empty()) m->rope_.freq_factors = m->rope_freqs_.data();
  // The cache holds this rank's KV heads (all of them on one node).
  HParams local = hp;
  if (!m->slice_.whole()) {
    local.n_head = m->slice_.n_head_kv * (hp.n_head / hp.n_head_kv);
    local.n_head_kv = m->slice_.n_head_kv;
  }
  m->kv_width_ = m->arch_->kv_width(local);

  m->layer_bytes_.assign(hp.n_layer, 0);
  for (const auto& t : file->tensors()) {
    const int il = layer_of(t.name);
    if (il >= 0 && il < hp.n_layer) m->layer_bytes_[il] += t.n_bytes;
  }
  return m;
}

const LayerWeights& Model::layer(int il) const {
  HERD_CHECK(il >= range_.first && il < range_.last);
  return layers_[il - range_.first];
}

std::size_t Model::layer_bytes(int il) const {
  HERD_CHECK(il >= 0 && il < hp_.n_layer);
  return layer_bytes_[il];
}

std::size_t Model::embedding_bytes() const {
  const auto* t = file_->find_tensor("token_embd.weight");
  return t ? t->n_bytes : 0;
}

std::size_t Model::head_bytes() const {
  std::size_t n = 0;
  if (const auto* t = file_->find_tensor("output_norm.weight")) n += t->n_bytes;
  const auto* out = file_->find_tensor("output.weight");
  if (!out) out = file_->find_tensor("token_embd.weight");
  if (out) n += out->n_bytes;
  return n;
}

std::size_t Model::kv_bytes_per_token_per_layer() const {
  return static_cast<std::size_t>(kv_width_.k + kv_width_.v) * kKvElementBytes;
}

std::string Model::summary() const {
  const HParams& hp = hp_;
  std::size_t layers_total = 0;
  for (auto b : layer_bytes_) layers_total += b;
  std::string s = fmt::format("architecture   {}{}\n", hp.arch,
                              hp.name.empty() ? "" : fmt::format(" ({})", hp.name));
  s += fmt::format("layers         {} (bound {}..{})\n", hp.n_layer, range_.first, range_.last);
  s += fmt::format("embedding      {}  vocab {}  context {}\n", hp.n_embd, hp.n_vocab,
                   hp.n_ctx_train);
  s += fmt::format(
      "attention      {} heads, {} KV heads, head size k {} v {}, rope {} dims "
      "base {:g}{}\n",
      hp.n_head, hp.n_head_kv, hp.head_dim_k, hp.head_dim_v, hp.n_rot, hp.rope_freq_base,
      rope_.neox ? " (neox)" : "");
  if (hp.kv_lora_rank > 0) {
    s += fmt::format("latent attn    q_lora {}  kv_lora {}\n", hp.q_lora_rank, hp.kv_lora_rank);
  }
  if (hp.n_ff > 0) s += fmt::format("feed-forward   {}\n", hp.n_ff);
  if (hp.n_expert > 0) {
    s += fmt::format("experts        {} ({} used), expert ffn {}, shared {}, dense lead {}\n",
                     hp.n_expert, hp.n_expert_used, hp.n_ff_exp, hp.n_expert_shared,
                     hp.n_layer_dense_lead);
  }
  s += fmt::format("weights        layers {}  embedding {}  head {}{}\n", human_bytes(layers_total),
                   human_bytes(embedding_bytes()), human_bytes(head_bytes()),
                   tied_output_ ? " (tied)" : "");
  s += fmt::format("KV cache       {} per token per layer (f16)\n",
                   human_bytes(kv_bytes_per_token_per_layer()));
  return s;
}

kernels::RopeConfig Architecture::rope_config(const HParams& hp) const {
  kernels::RopeConfig c;
  c.n_rot = hp.n_rot;
  c.neox = rope_neox();
  c.freq_base = hp.rope_freq_base;
  c.freq_scale = hp.rope_freq_scale;
  c.ext_factor = hp.rope_scaling == RopeScaling::kYarn ? 1.0f : 0.0f;
  c.attn_factor = hp.rope_attn_factor;
  c.n_ctx_orig = hp.rope_n_ctx_orig;
  return c;
}

KvWidth Architecture::kv_width(const HParams& hp) const {
  return {static_cast<std::int64_t>(hp.n_head_kv) * hp.head_dim_k,
          static_cast<std::int64_t>(hp.n_head_kv) * hp.head_dim_v, hp.n_head_kv,
          /*k_blocked=*/true};
}

}  // namespace herd::model
