// The forward pass over layer ranges: a model split into stages gives the same logits as one
// stage; stories260K (a real trained model) generates its reference text; context limits and bad
// input are errors, not crashes.
#include "engine/stage.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "engine/local_pipeline.h"
#include "gguf/reader.h"
#include "gguf/writer.h"
#include "model/blocks.h"
#include "model/model.h"
#include "support/test_data.h"
#include "util/error.h"

namespace herd::engine {
namespace {

const std::vector<std::int32_t> kInput = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315};

ThreadPool& pool() {
  static ThreadPool p(2);
  return p;
}

std::shared_ptr<const gguf::File> open(const std::filesystem::path& path) {
  return std::make_shared<const gguf::File>(gguf::File::open(path.string()));
}

int argmax(const float* x, int n) {
  return static_cast<int>(std::max_element(x, x + n) - x);
}

TEST(Stories260K, GreedyFromBosMatchesLlama2cFor200Tokens) {
  HERD_REQUIRE_SHARED(path, "models/stories260K.gguf");
  HERD_REQUIRE_SHARED(ids_path, "models/stories260K.golden_greedy_ids.txt");
  const auto golden = herd::testing::read_ids(ids_path);
  ASSERT_EQ(golden.size(), 200u);
  auto model = model::Model::load(open(path));
  LocalPipeline pipe(model, 256, pool());
  std::vector<float> logits;
  std::int32_t token = 1;  // BOS
  std::vector<std::int32_t> ours;
  for (int pos = 0; pos < 200; ++pos) {
    pipe.forward(std::span(&token, 1), pos, false, logits);
    token = argmax(logits.data(), pipe.n_vocab());
    ours.push_back(token);
  }
  EXPECT_EQ(ours, golden);
}

// Runs the prompt and then three single-token steps through a chain of stages, returning all
// logits produced.
std::vector<float> run_chain(std::vector<std::unique_ptr<Stage>>& stages) {
  std::vector<float> all, hidden, logits;
  auto step = [&](std::span<const std::int32_t> tokens, int pos0) {
    stages.front()->embed(tokens, hidden);
    for (auto& s : stages) s->run_layers(hidden.data(), static_cast<int>(tokens.size()), pos0);
    stages.back()->head(hidden.data(), static_cast<int>(tokens.size()), logits);
    all.insert(all.end(), logits.begin(), logits.end());
  };
  step(kInput, 0);
  for (int i = 0; i < 3; ++i) {
    const std::int32_t t = 300 + i;
    step(std::span(&t, 1), static_cast<int>(kInput.size()) + i);
  }
  return all;
}

class SplitStages : public ::testing::TestWithParam<const char*> {};

TEST_P(SplitStages, TwoStagesGiveTheSameLogitsAsOne) {
  HERD_REQUIRE_SHARED(path, std::string("golden/") + GetParam() + ".gguf");
  auto file = open(path);
  auto whole = model::Model::load(file);
  const int n = whole->n_layer();
  std::vector<std::unique_ptr<Stage>> one;
  one.push_back(std::make_unique<Stage>(whole, 64, pool()));
  const auto expected = run_chain(one);

  for (int k = 1; k < n; ++k) {
    std::vector<std::unique_ptr<Stage>> two;
    two.push_back(
        std::make_unique<Stage>(model::Model::load(file, model::LayerRange{0, k}), 64, pool()));
    two.push_back(
        std::make_unique<Stage>(model::Model::load(file, model::LayerRange{k, n}), 64, pool()));
    EXPECT_FALSE(two[0]->model().has_head());
    EXPECT_FALSE(two[1]->model().has_embedding());
    const auto got = run_chain(two);
    ASSERT_EQ(got.size(), expected.size());
    // The same arithmetic in the same order: equal to the bit.
    EXPECT_EQ(got, expected) << GetParam() << " split at layer " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Shared, SplitStages,
                         ::testing::Values("llama-f32", "qwen2moe-f16", "qwen3-f16",
                                           "deepseek2-f16"),
                         [](const auto& info) {
                           std::string s = info.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

// A stage of a cluster receives a GGUF with only its own tensors.
TEST(SplitStages, StageLoadsFromAFileHoldingOnlyItsTensors) {
  HERD_REQUIRE_SHARED(path, "golden/llama-f32.gguf");
  auto file = open(path);
  gguf::Writer w(file->alignment());
  w.copy_metadata(file->metadata());
  for (const auto& t : file->tensors()) {
    if (t.name == "token_embd.weight" || t.name.starts_with("blk.0.")) continue;
    w.add_tensor(t.name, t.type, t.dims, std::span(file->tensor_data(t), t.n_bytes));
  }
  const auto shard_path = herd::testing::temp_dir("stage_shard") / "tail.gguf";
  w.write(shard_path.string());
  auto shard = open(shard_path);

  EXPECT_THROW(model::Model::load(shard), FormatError);  // layer 0 and the embedding are absent
  auto tail = model::Model::load(shard, model::LayerRange{1, 3});
  auto head = model::Model::load(file, model::LayerRange{0, 1});
  EXPECT_EQ(tail->n_vocab(), 512);

  std::vector<std::unique_ptr<Stage>> split;
  split.push_back(std::make_unique<Stage>(head, 64, pool()));
  split.push_back(std::make_unique<Stage>(tail, 64, pool()));
  std::vector<std::unique_ptr<Stage>> one;
  one.push_back(std::make_unique<Stage>(model::Model::load(file), 64, pool()));
  EXPECT_EQ(run_chain(split), run_chain(one));
}

class PipelineErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    auto path = herd::testing::shared_file("golden/llama-f32.gguf");
    if (path.empty()) GTEST_SKIP() << "reference data ../shared/golden/llama-f32.gguf not found";
    model_ = model::Model::load(open(path));
  }
  std::shared_ptr<model::Model> model_;
};

TEST_F(PipelineErrors, PositionsBeyondTheContextAreAnError) {
  LocalPipeline pipe(model_, 8, pool());
  std::vector<float> logits;
  const std::vector<std::int32_t> nine(9, 5);
  EXPECT_THROW(pipe.forward(nine, 0, false, logits), Error);
  pipe.forward(std::span(nine.data(), 8), 0, false, logits);  // exactly fills the context
  EXPECT_EQ(logits.size(), 512u);
  EXPECT_THROW(pipe.forward(std::span(nine.data(), 1), 8, false, logits), Error);
}

TEST_F(PipelineErrors, TokenOutsideTheVocabularyIsInvalid) {
  LocalPipeline pipe(model_, 8, pool());
  std::vector<float> logits;
  const std::vector<std::int32_t> bad = {1, 512};
  EXPECT_THROW(pipe.forward(bad, 0, false, logits), InvalidArgument);
  const std::vector<std::int32_t> negative = {-1};
  EXPECT_THROW(pipe.forward(negative, 0, false, logits), InvalidArgument);
}

TEST_F(PipelineErrors, PositionThatLeavesAGapIsInvalid) {
  LocalPipeline pipe(model_, 16, pool());
  std::vector<float> logits;
  const std::vector<std::int32_t> two = {1, 403};
  pipe.forward(two, 0, false, logits);
  EXPECT_THROW(pipe.forward(two, 5, false, logits), InvalidArgument);
}

TEST_F(PipelineErrors, StageWithoutHeadOrEmbeddingRefusesThem) {
  auto file = std::make_shared<const gguf::File>(gguf::File::open(model_->file().path()));
  Stage middle(model::Model::load(file, model::LayerRange{1, 2}), 8, pool());
  std::vector<float> hidden, logits;
  const std::vector<std::int32_t> one = {1};
  EXPECT_THROW(middle.embed(one, hidden), Error);
  hidden.assign(256, 0.5f);
  EXPECT_THROW(middle.head(hidden.data(), 1, logits), Error);
  auto partial = model::Model::load(file, model::LayerRange{1, 2});
  EXPECT_THROW(LocalPipeline(partial, 8, pool()), InvalidArgument);
}

TEST_F(PipelineErrors, TruncateThenRecomputeGivesTheSameLogits) {
  LocalPipeline pipe(model_, 32, pool());
  std::vector<float> first, again;
  const std::vector<std::int32_t> a = {1, 403, 407, 261};
  const std::vector<std::int32_t> b = {378, 432};
  pipe.forward(a, 0, false, first);
  pipe.forward(b, 4, true, first);
  pipe.truncate(4);
  pipe.forward(b, 4, true, again);
  EXPECT_EQ(first, again);
  EXPECT_EQ(pipe.n_ctx(), 32);
  EXPECT_EQ(pipe.n_vocab(), 512);
}

TEST_F(PipelineErrors, BatchedPrefillEqualsOneTokenAtATime) {
  LocalPipeline batched(model_, 32, pool());
  LocalPipeline stepwise(model_, 32, pool());
  std::vector<float> all, one;
  batched.forward(kInput, 0, true, all);
  const int n_vocab = batched.n_vocab();
  for (std::size_t i = 0; i < kInput.size(); ++i) {
    stepwise.forward(std::span(&kInput[i], 1), static_cast<int>(i), false, one);
    for (int v = 0; v < n_vocab; ++v) {
      ASSERT_NEAR(one[v], all[i * n_vocab + v], 1e-3f) << "position " << i << " token " << v;
    }
  }
}

}  // namespace
}  // namespace herd::engine

namespace herd::engine {
namespace {

// A batch longer than Stage::kMaxMicroBatch runs in micro-batches; the logits must be those of
// feeding the same tokens in smaller pieces (each piece attends to the earlier ones through the
// cache either way). Same kernels per token, so only float order in the blocked paths could
// differ: 1e-4 is far below any real change of the logits (order 1).
TEST(MicroBatches, LongBatchEqualsSmallerPieces) {
  const auto path = herd::testing::shared_file("golden/llama-f32.gguf");
  if (path.empty()) GTEST_SKIP() << "reference data ../shared/golden/llama-f32.gguf not found";
  auto model = model::Model::load(open(path));
  const int n = Stage::kMaxMicroBatch * 2 + 77;
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) tokens[static_cast<std::size_t>(i)] = (i * 37 + 11) % 500 + 1;
  LocalPipeline whole(model, n + 1, pool());
  LocalPipeline pieces(model, n + 1, pool());
  std::vector<float> a, b;
  whole.forward(tokens, 0, false, a);
  for (int done = 0; done < n; done += 300) {
    const int len = std::min(300, n - done);
    pieces.forward(std::span(tokens).subspan(static_cast<std::size_t>(done), len), done, false, b);
  }
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-4) << i;
  // Both caches now hold n positions: one more token continues from there.
  const std::int32_t next = 42;
  whole.forward(std::span(&next, 1), n, false, a);
  pieces.forward(std::span(&next, 1), n, false, b);
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-4) << i;
}

}  // namespace
}  // namespace herd::engine

namespace herd::engine {
namespace {

class LongBatches : public ::testing::Test {
 protected:
  void SetUp() override {
    auto path = herd::testing::shared_file("golden/llama-f32.gguf");
    if (path.empty()) GTEST_SKIP() << "reference data ../shared/golden/llama-f32.gguf not found";
    model_ = model::Model::load(open(path));
  }
  static std::vector<std::int32_t> tokens(int n) {
    std::vector<std::int32_t> t(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) t[static_cast<std::size_t>(i)] = (i * 53 + 7) % 500 + 1;
    return t;
  }
  std::shared_ptr<model::Model> model_;
};

// The pipeline runs a long batch one micro-batch at a time, but a bad token or a context overflow
// in its last micro-batch must fail before the first one fills the cache: afterwards, position 0
// is still where the next batch starts (a filled cache would make it a rewrite, and a later
// position a gap).
TEST_F(LongBatches, AnErrorInTheLastMicroBatchLeavesTheCacheUntouched) {
  const int n = Stage::kMaxMicroBatch + 10;
  LocalPipeline pipe(model_, n, pool());
  std::vector<float> logits;
  auto bad = tokens(n);
  bad.back() = 512;  // outside the vocabulary
  EXPECT_THROW(pipe.forward(bad, 0, false, logits), InvalidArgument);
  auto too_long = tokens(n + 1);
  EXPECT_THROW(pipe.forward(too_long, 0, false, logits), Error);
  // Nothing was cached: continuing at position 1 leaves a gap.
  const std::int32_t one = 1;
  EXPECT_THROW(pipe.forward(std::span(&one, 1), 1, false, logits), InvalidArgument);
  pipe.forward(tokens(n), 0, false, logits);  // the whole context still fits
  EXPECT_EQ(logits.size(), 512u);
}

// All logits of a batch longer than a micro-batch: each row equals the last-token logits of the
// prefix ending there (computed independently), at rows on both sides of a micro-batch border.
TEST_F(LongBatches, AllLogitsSpanMicroBatches) {
  const int n = Stage::kMaxMicroBatch + 5;
  const auto t = tokens(n);
  LocalPipeline pipe(model_, n, pool());
  std::vector<float> all;
  pipe.forward(t, 0, true, all);
  const int n_vocab = pipe.n_vocab();
  ASSERT_EQ(all.size(), static_cast<std::size_t>(n) * n_vocab);
  for (int row : {0, Stage::kMaxMicroBatch - 1, Stage::kMaxMicroBatch, n - 1}) {
    LocalPipeline prefix(model_, n, pool());
    std::vector<float> last;
    prefix.forward(std::span(t).first(static_cast<std::size_t>(row) + 1), 0, false, last);
    for (int v = 0; v < n_vocab; ++v) {
      ASSERT_NEAR(last[v], all[static_cast<std::size_t>(row) * n_vocab + v], 1e-4)
          << "row " << row << " token " << v;
    }
  }
}

}  // namespace
}  // namespace herd::engine

namespace herd::engine {
namespace {

// From model::kFfnSplitTokens tokens on, the feed-forward runs in two halves of its hidden
// dimension and adds the second half's down-projection to the first's. Such a batch must give
// the logits of the same tokens fed in pieces shorter than that (one pass each). Both round the
// same activation blocks and use the batched kernels; only the float order of the
// down-projection's sum differs, so the tolerance is MicroBatches' 1e-4 scaled to the quantized
// model's larger logits: 1e-3. (One token at a time is no reference for the quantized model:
// decode's attention order moves an activation across a rounding step, 8e-3 at position 16.)
TEST(FfnSplit, LongBatchEqualsShorterPieces) {
  for (const char* name : {"golden/llama-q4_0.gguf", "golden/llama-f32.gguf"}) {
    const auto path = herd::testing::shared_file(name);
    if (path.empty()) GTEST_SKIP() << "reference data ../shared/" << name << " not found";
    auto model = model::Model::load(open(path));
    ASSERT_EQ(model->hparams().n_ff % 64, 0) << "the split needs block-aligned halves";
    const int n = model::kFfnSplitTokens + 9;
    const int piece = model::kFfnSplitTokens - 1;
    std::vector<std::int32_t> tokens(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) tokens[static_cast<std::size_t>(i)] = (i * 53 + 7) % 500 + 1;
    LocalPipeline whole(model, n, pool());
    LocalPipeline pieces(model, n, pool());
    std::vector<float> all, part, joined;
    whole.forward(tokens, 0, true, all);
    for (int done = 0; done < n; done += piece) {
      const int len = std::min(piece, n - done);
      pieces.forward(std::span(tokens).subspan(static_cast<std::size_t>(done), len), done, true,
                     part);
      joined.insert(joined.end(), part.begin(), part.end());
    }
    ASSERT_EQ(all.size(), joined.size());
    for (std::size_t i = 0; i < all.size(); ++i)
      ASSERT_NEAR(all[i], joined[i], 1e-3f) << name << " logit " << i;
  }
}

}  // namespace
}  // namespace herd::engine
