// Which tensors each pipeline stage receives, on the golden files and on a synthetic tied model.
#include "cluster/placement/shard_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "gguf/writer.h"
#include "support/test_data.h"
#include "util/error.h"

namespace herd::cluster {
namespace {

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// A 2-layer model with rope_freqs and a tied output (no output.weight).
std::vector<std::uint8_t> tied_model_bytes() {
  gguf::Writer w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 2);
  std::vector<float> v(8, 0.5f);
  w.add_tensor_f32("token_embd.weight", tensor::Type::kF32, {4, 2}, v);
  w.add_tensor_f32("rope_freqs.weight", tensor::Type::kF32, {4}, std::span(v).first(4));
  for (int l = 0; l < 2; ++l) {
    w.add_tensor_f32("blk." + std::to_string(l) + ".attn_norm.weight", tensor::Type::kF32, {4},
                     std::span(v).first(4));
  }
  w.add_tensor_f32("output_norm.weight", tensor::Type::kF32, {4}, std::span(v).first(4));
  return w.to_bytes();
}

TEST(ShardPlan, TensorLayerParsesOnlyBlockNames) {
  EXPECT_EQ(tensor_layer("blk.0.attn_q.weight"), 0);
  EXPECT_EQ(tensor_layer("blk.17.ffn_up.weight"), 17);
  EXPECT_EQ(tensor_layer("token_embd.weight"), -1);
  EXPECT_EQ(tensor_layer("blk.x.attn_q.weight"), -1);
  EXPECT_EQ(tensor_layer("blk.3"), -1);
}

TEST(ShardPlan, TiedOutputSendsTokenEmbdToBothEnds) {
  auto bytes = tied_model_bytes();
  gguf::File file = gguf::File::parse(bytes);
  auto first = tensors_for_range(file, {0, 1});
  EXPECT_EQ(first, (std::vector<std::string>{"token_embd.weight", "rope_freqs.weight",
                                             "blk.0.attn_norm.weight"}));
  auto last = tensors_for_range(file, {1, 2});
  EXPECT_EQ(last, (std::vector<std::string>{"token_embd.weight", "rope_freqs.weight",
                                            "blk.1.attn_norm.weight", "output_norm.weight"}));
}

TEST(ShardPlan, RejectsEmptyOrOutOfModelRanges) {
  auto bytes = tied_model_bytes();
  gguf::File file = gguf::File::parse(bytes);
  EXPECT_THROW(tensors_for_range(file, {1, 1}), InvalidArgument);
  EXPECT_THROW(tensors_for_range(file, {0, 3}), InvalidArgument);
  EXPECT_THROW(tensors_for_range(file, {-1, 1}), InvalidArgument);
}

TEST(ShardPlan, GoldenStagesSplitLayersAndEnds) {
  HERD_REQUIRE_SHARED(path, "golden/qwen2-f16.gguf");
  gguf::File file = gguf::File::open(path.string());
  ASSERT_EQ(block_count(file.metadata()), 3);
  auto a = tensors_for_range(file, {0, 2});
  auto b = tensors_for_range(file, {2, 3});
  EXPECT_TRUE(contains(a, "token_embd.weight"));
  EXPECT_TRUE(contains(a, "blk.1.attn_q.bias"));
  EXPECT_FALSE(contains(a, "output_norm.weight"));
  EXPECT_FALSE(contains(a, "blk.2.attn_q.weight"));
  EXPECT_TRUE(contains(b, "output_norm.weight"));
  EXPECT_TRUE(contains(b, "blk.2.ffn_down.weight"));
  EXPECT_FALSE(contains(b, "blk.1.ffn_down.weight"));
  EXPECT_EQ(contains(b, "token_embd.weight"), file.find_tensor("output.weight") == nullptr);
  // Every tensor goes somewhere; only global tensors go to both stages.
  std::set<std::string> all(a.begin(), a.end());
  all.insert(b.begin(), b.end());
  EXPECT_EQ(all.size(), file.tensors().size());
  for (const auto& name : a) {
    if (contains(b, name)) {
      EXPECT_EQ(tensor_layer(name), -1) << name;
    }
  }
}

TEST(ShardPlan, GoldenFilesEveryLayerInExactlyOneStage) {
  for (const char* name : {"golden/llama-q4_k_m.gguf", "golden/deepseek2-q8_0.gguf"}) {
    auto path = testing::shared_file(name);
    if (path.empty()) GTEST_SKIP() << name << " not found";
    gguf::File file = gguf::File::open(path.string());
    int n = block_count(file.metadata());
    std::size_t per_layer_total = 0;
    for (int l = 0; l < n; ++l) {
      for (const auto& t : tensors_for_range(file, {l, l + 1})) {
        if (tensor_layer(t) >= 0) {
          EXPECT_EQ(tensor_layer(t), l) << t;
          ++per_layer_total;
        }
      }
    }
    std::size_t block_tensors =
        std::count_if(file.tensors().begin(), file.tensors().end(),
                      [](const auto& t) { return tensor_layer(t.name) >= 0; });
    EXPECT_EQ(per_layer_total, block_tensors) << name;
  }
}

TEST(ShardPlan, ShardKeyRejectsNonHexHashes) {
  EXPECT_EQ(shard_key("0123456789abcdef", {0, 2}), "0123456789abcdef-layers-0-2");
  EXPECT_THROW(shard_key("../../etc/passwd0000", {0, 2}), InvalidArgument);
  EXPECT_THROW(shard_key("abc", {0, 2}), InvalidArgument);
  EXPECT_THROW(shard_key("0123456789abcdef", {2, 2}), InvalidArgument);
}

}  // namespace
}  // namespace herd::cluster
