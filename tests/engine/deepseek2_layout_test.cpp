// DeepSeek2 files come with attn_kv_b (older converters) or with it split into attn_k_b (stored
// transposed) and attn_v_b (newer ones, run as absorbed MLA over a latent KV cache). Both must
// compute the same model.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/local_pipeline.h"
#include "gguf/reader.h"
#include "gguf/writer.h"
#include "model/model.h"
#include "support/test_data.h"

namespace herd::engine {
namespace {

std::shared_ptr<const gguf::File> open(const std::filesystem::path& path) {
  return std::make_shared<const gguf::File>(gguf::File::open(path.string()));
}

std::span<const std::uint8_t> as_bytes(const std::vector<float>& v) {
  return {reinterpret_cast<const std::uint8_t*>(v.data()), v.size() * sizeof(float)};
}

// Rewrites every blk.N.attn_kv_b.weight [kv_lora, n_head * (nope + v)] as
// attn_k_b [nope, kv_lora, n_head] (transposed per head) and attn_v_b [kv_lora, v, n_head], f32.
std::filesystem::path split_kv_b(const gguf::File& src, int n_head, int nope, int head_v) {
  gguf::Writer w(src.alignment());
  w.copy_metadata(src.metadata());
  for (const auto& t : src.tensors()) {
    const auto pos = t.name.find("attn_kv_b.weight");
    if (pos == std::string::npos) {
      w.add_tensor(t.name, t.type, t.dims, std::span(src.tensor_data(t), t.n_bytes));
      continue;
    }
    const int lora = static_cast<int>(t.dims[0]);
    std::vector<float> kv(static_cast<std::size_t>(t.n_elements));
    tensor::traits(t.type).dequantize(src.tensor_data(t), kv.data(), t.n_elements);
    std::vector<float> k_b(static_cast<std::size_t>(n_head) * lora * nope);
    std::vector<float> v_b(static_cast<std::size_t>(n_head) * head_v * lora);
    for (int h = 0; h < n_head; ++h) {
      const float* head = kv.data() + static_cast<std::size_t>(h) * (nope + head_v) * lora;
      for (int r = 0; r < lora; ++r) {
        for (int c = 0; c < nope; ++c)
          k_b[(static_cast<std::size_t>(h) * lora + r) * nope + c] = head[c * lora + r];
      }
      for (int v = 0; v < head_v; ++v) {
        for (int r = 0; r < lora; ++r) {
          v_b[(static_cast<std::size_t>(h) * head_v + v) * lora + r] = head[(nope + v) * lora + r];
        }
      }
    }
    const std::string prefix = t.name.substr(0, pos);
    w.add_tensor(prefix + "attn_k_b.weight", tensor::Type::kF32, {nope, lora, n_head},
                 as_bytes(k_b));
    w.add_tensor(prefix + "attn_v_b.weight", tensor::Type::kF32, {lora, head_v, n_head},
                 as_bytes(v_b));
  }
  const auto path = herd::testing::temp_dir("deepseek2_layout") / "split.gguf";
  w.write(path.string());
  return path;
}

TEST(DeepSeek2Layout, SplitKvBGivesTheSameLogitsAsCombined) {
  HERD_REQUIRE_SHARED(path, "golden/deepseek2-f16.gguf");
  auto file = open(path);
  auto combined = model::Model::load(file);
  const auto& hp = combined->hparams();
  auto split_file = open(split_kv_b(*file, hp.n_head, hp.head_dim_k - hp.n_rot, hp.head_dim_v));
  auto split = model::Model::load(split_file);
  ASSERT_TRUE(static_cast<bool>(split->layer(0).wk_b));
  ASSERT_EQ(split->layer(0).wkv_b.data, nullptr);
  // The split file runs absorbed MLA and caches only the latent [c, k_rope].
  EXPECT_TRUE(split->hparams().mla_absorbed);
  EXPECT_EQ(split->kv_bytes_per_token_per_layer(), (256u + 64u) * 2u);  // f16
  EXPECT_EQ(combined->kv_bytes_per_token_per_layer(), 4u * (192u + 128u) * 2u);

  ThreadPool pool(2);
  LocalPipeline a(combined, 32, pool);
  LocalPipeline b(split, 32, pool);
  const std::vector<std::int32_t> tokens = {1, 403, 407, 261, 378, 432, 383, 286};
  std::vector<float> la, lb;
  a.forward(tokens, 0, true, la);
  b.forward(tokens, 0, true, lb);
  ASSERT_EQ(la.size(), lb.size());
  // The f16 cache rounds different values in the two layouts (expanded K/V rows vs the latent),
  // so they agree to f16 precision (measured worst 1.8e-3), not to f32 precision.
  constexpr float kTol = 5e-3f;
  for (std::size_t i = 0; i < la.size(); ++i) ASSERT_NEAR(la[i], lb[i], kTol) << "logit " << i;
  for (int step = 0; step < 4; ++step) {
    const std::int32_t next = 300 + step;
    a.forward(std::span(&next, 1), 8 + step, false, la);
    b.forward(std::span(&next, 1), 8 + step, false, lb);
    for (std::size_t i = 0; i < la.size(); ++i) {
      ASSERT_NEAR(la[i], lb[i], kTol) << "decode step " << step << " logit " << i;
    }
  }
}

}  // namespace
}  // namespace herd::engine
