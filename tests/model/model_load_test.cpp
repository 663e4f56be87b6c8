// Loading models: hyper-parameters from metadata, weight binding per layer range, sizes for
// placement, and a FormatError naming the problem for missing or misshapen tensors.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>

#include "gguf/reader.h"
#include "gguf/writer.h"
#include "model/model.h"
#include "support/test_data.h"
#include "util/error.h"

namespace herd::model {
namespace {

std::shared_ptr<const gguf::File> open(const std::filesystem::path& path) {
  return std::make_shared<const gguf::File>(gguf::File::open(path.string()));
}

// Copies `src` into a new file, letting `edit` drop (return false) or rewrite tensors and keys.
using TensorEdit = std::function<bool(const gguf::TensorInfo&, gguf::Writer&)>;
std::shared_ptr<const gguf::File> rewrite(const gguf::File& src, const std::string& tag,
                                          const TensorEdit& edit,
                                          const std::function<void(gguf::Writer&)>& keys = {}) {
  gguf::Writer w(src.alignment());
  w.copy_metadata(src.metadata());
  if (keys) keys(w);
  for (const auto& t : src.tensors()) {
    if (edit(t, w)) w.add_tensor(t.name, t.type, t.dims, std::span(src.tensor_data(t), t.n_bytes));
  }
  const auto path = herd::testing::temp_dir("model_load") / (tag + ".gguf");
  w.write(path.string());
  return open(path);
}

template <typename Fn>
std::string format_error_of(Fn&& fn) {
  try {
    fn();
  } catch (const FormatError& e) {
    return e.what();
  }
  return "(no FormatError)";
}

TEST(ModelLoad, ReadsLlamaHyperParameters) {
  HERD_REQUIRE_SHARED(path, "golden/llama-f32.gguf");
  auto m = Model::load(open(path));
  const auto& hp = m->hparams();
  EXPECT_EQ(m->arch_name(), "llama");
  EXPECT_EQ(hp.n_layer, 3);
  EXPECT_EQ(hp.n_embd, 256);
  EXPECT_EQ(hp.n_ff, 768);
  EXPECT_EQ(hp.n_head, 4);
  EXPECT_EQ(hp.n_head_kv, 2);
  EXPECT_EQ(hp.head_dim_k, 64);
  EXPECT_EQ(hp.n_rot, 64);
  EXPECT_EQ(hp.n_vocab, 512);
  EXPECT_FLOAT_EQ(hp.rope_freq_base, 500000.0f);
  EXPECT_FALSE(m->rope().neox);
  EXPECT_TRUE(m->has_embedding());
  EXPECT_TRUE(m->has_head());
  EXPECT_EQ(m->kv_bytes_per_token_per_layer(), (128u + 128u) * 2u);  // f16 K and V
  EXPECT_NE(m->summary().find("llama"), std::string::npos);
}

TEST(ModelLoad, ReadsDeepSeek2HyperParameters) {
  HERD_REQUIRE_SHARED(path, "golden/deepseek2-f16.gguf");
  auto m = Model::load(open(path));
  const auto& hp = m->hparams();
  EXPECT_EQ(hp.q_lora_rank, 256);
  EXPECT_EQ(hp.kv_lora_rank, 256);
  EXPECT_EQ(hp.head_dim_k, 192);
  EXPECT_EQ(hp.head_dim_v, 128);
  EXPECT_EQ(hp.n_rot, 64);
  EXPECT_EQ(hp.n_expert, 8);
  EXPECT_EQ(hp.n_expert_used, 2);
  EXPECT_EQ(hp.n_expert_shared, 1);
  EXPECT_EQ(hp.n_layer_dense_lead, 1);
  EXPECT_FLOAT_EQ(hp.expert_weights_scale, 2.5f);
  EXPECT_TRUE(hp.expert_weights_norm);
  EXPECT_EQ(hp.expert_gating, ExpertGating::kSigmoid);
  EXPECT_FALSE(hp.is_moe_layer(0));
  EXPECT_TRUE(hp.is_moe_layer(1));
  EXPECT_TRUE(m->layer(0).ffn_gate.data != nullptr);
  EXPECT_TRUE(static_cast<bool>(m->layer(1).gate_exps));
  EXPECT_TRUE(static_cast<bool>(m->layer(2).exp_probs_b));
  EXPECT_EQ(m->kv_width().k, 4 * 192);
  EXPECT_EQ(m->kv_width().v, 4 * 128);
}

TEST(ModelLoad, QwenArchitecturesUseNeoxRope) {
  for (const char* stem : {"qwen2-f16", "qwen2moe-f16", "qwen3-f16", "qwen3moe-f16"}) {
    auto path = herd::testing::shared_file(std::string("golden/") + stem + ".gguf");
    if (path.empty()) GTEST_SKIP() << "golden models not found";
    auto m = Model::load(open(path));
    EXPECT_TRUE(m->rope().neox) << stem;
  }
}

TEST(ModelLoad, SizesForPlacementAddUpToTheFile) {
  HERD_REQUIRE_SHARED(path, "golden/llama-f32.gguf");
  auto file = open(path);
  auto m = Model::load(file, LayerRange{1, 2});
  std::size_t total = 0;
  for (const auto& t : file->tensors()) total += t.n_bytes;
  std::size_t sum = m->embedding_bytes() + m->head_bytes();
  for (int il = 0; il < m->n_layer(); ++il) sum += m->layer_bytes(il);
  EXPECT_EQ(sum, total);
  EXPECT_EQ(m->embedding_bytes(), 256u * 512u * 4u);
  EXPECT_GT(m->layer_bytes(0), 0u);
  EXPECT_FALSE(m->has_embedding());
  EXPECT_FALSE(m->has_head());
}

TEST(ModelLoad, TiedEmbeddingsServeAsTheHead) {
  HERD_REQUIRE_SHARED(path, "golden/llama-f32.gguf");
  auto file = open(path);
  auto tied = rewrite(*file, "tied", [](const gguf::TensorInfo& t, gguf::Writer&) {
    return t.name != "output.weight";
  });
  auto m = Model::load(tied);
  EXPECT_EQ(m->output().data, m->token_embd().data);
  EXPECT_EQ(m->head_bytes(), 256u * 4u + 256u * 512u * 4u);
}

TEST(ModelLoad, MissingTensorIsAFormatErrorNamingIt) {
  HERD_REQUIRE_SHARED(path, "golden/llama-f32.gguf");
  auto file = open(path);
  auto broken = rewrite(*file, "missing", [](const gguf::TensorInfo& t, gguf::Writer&) {
    return t.name != "blk.1.ffn_up.weight";
  });
  EXPECT_NE(format_error_of([&] { Model::load(broken); }).find("blk.1.ffn_up.weight"),
            std::string::npos);
  // A range that does not include layer 1 does not need it.
  EXPECT_NO_THROW(Model::load(broken, LayerRange{2, 3}));
}

TEST(ModelLoad, WrongShapeIsAFormatErrorNamingTheTensor) {
  HERD_REQUIRE_SHARED(path, "golden/llama-f32.gguf");
  auto file = open(path);
  // attn_k gets attn_q's [256, 256] data: more KV heads than the metadata says.
  const auto* q = file->find_tensor("blk.0.attn_q.weight");
  auto broken = rewrite(*file, "shape", [&](const gguf::TensorInfo& t, gguf::Writer& w) {
    if (t.name != "blk.0.attn_k.weight") return true;
    w.add_tensor(t.name, q->type, q->dims, std::span(file->tensor_data(*q), q->n_bytes));
    return false;
  });
  const auto message = format_error_of([&] { Model::load(broken); });
  EXPECT_NE(message.find("blk.0.attn_k.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("[256, 128]"), std::string::npos) << message;
}

TEST(ModelLoad, MissingHyperParameterIsAFormatErrorNamingTheKey) {
  HERD_REQUIRE_SHARED(path, "golden/llama-f32.gguf");
  auto file = open(path);
  gguf::Writer w(file->alignment());
  for (const auto& [key, value] : file->metadata().entries()) {
    if (key != "llama.embedding_length") w.set(key, value);
  }
  const auto out = herd::testing::temp_dir("model_load") / "nokey.gguf";
  w.write(out.string());
  const auto message = format_error_of([&] { Model::load(open(out)); });
  EXPECT_NE(message.find("llama.embedding_length"), std::string::npos) << message;
}

TEST(ModelLoad, UnknownArchitectureIsAFormatError) {
  HERD_REQUIRE_SHARED(path, "golden/llama-f32.gguf");
  auto file = open(path);
  auto other = rewrite(
      *file, "arch", [](const gguf::TensorInfo&, gguf::Writer&) { return true; },
      [](gguf::Writer& w) { w.set_string("general.architecture", "mamba"); });
  const auto message = format_error_of([&] { Model::load(other); });
  EXPECT_NE(message.find("mamba"), std::string::npos) << message;
}

TEST(ModelLoad, ReadsYarnRopeScalingAndBindsRopeFrequencyFactors) {
  HERD_REQUIRE_SHARED(path, "golden/llama-f32.gguf");
  auto file = open(path);
  const std::vector<float> factors(32, 2.0f);  // rope.dimension_count 64 -> 32 pairs
  auto scaled = rewrite(
      *file, "yarn",
      [&](const gguf::TensorInfo& t, gguf::Writer& w) {
        if (t.name == "output.weight") {
          w.add_tensor("rope_freqs.weight", tensor::Type::kF32, {32},
                       std::span(reinterpret_cast<const std::uint8_t*>(factors.data()), 32 * 4));
        }
        return true;
      },
      [](gguf::Writer& w) {
        w.set_string("llama.rope.scaling.type", "yarn");
        w.set_f32("llama.rope.scaling.factor", 4.0f);
        w.set_u32("llama.rope.scaling.original_context_length", 128);
      });
  auto m = Model::load(scaled);
  const auto& hp = m->hparams();
  EXPECT_EQ(hp.rope_scaling, RopeScaling::kYarn);
  EXPECT_FLOAT_EQ(hp.rope_freq_scale, 0.25f);
  EXPECT_EQ(hp.rope_n_ctx_orig, 128);
  EXPECT_TRUE(hp.has_rope_freqs);
  EXPECT_FLOAT_EQ(m->rope().ext_factor, 1.0f);
  ASSERT_NE(m->rope().freq_factors, nullptr);
  EXPECT_FLOAT_EQ(m->rope().freq_factors[31], 2.0f);
}

TEST(ModelLoad, UnknownRopeScalingTypeIsAFormatError) {
  HERD_REQUIRE_SHARED(path, "golden/llama-f32.gguf");
  auto file = open(path);
  auto odd = rewrite(
      *file, "ropetype", [](const gguf::TensorInfo&, gguf::Writer&) { return true; },
      [](gguf::Writer& w) { w.set_string("llama.rope.scaling.type", "longrope"); });
  EXPECT_NE(format_error_of([&] { Model::load(odd); }).find("longrope"), std::string::npos);
}

TEST(ModelLoad, LayerRangeOutsideTheModelIsInvalid) {
  HERD_REQUIRE_SHARED(path, "golden/llama-f32.gguf");
  auto file = open(path);
  EXPECT_THROW(Model::load(file, LayerRange{0, 4}), InvalidArgument);
  EXPECT_THROW(Model::load(file, LayerRange{2, 2}), InvalidArgument);
  EXPECT_THROW(Model::load(file, LayerRange{-1, 2}), InvalidArgument);
}

TEST(ModelLoad, RegistryKnowsEveryGoldenArchitecture) {
  for (const char* arch : {"llama", "qwen2", "qwen2moe", "qwen3", "qwen3moe", "deepseek2"}) {
    EXPECT_NE(find_architecture(arch), nullptr) << arch;
  }
  EXPECT_EQ(find_architecture("gpt2"), nullptr);
}

}  // namespace
}  // namespace herd::model
