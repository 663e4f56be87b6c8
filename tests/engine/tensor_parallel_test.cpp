// Tensor and expert parallelism in the engine: every golden model split over 2 and 3 ranks
// (threads of this process, each with its own slice, KV cache and thread pool) gives what one
// node gives.
//
// Tolerances (issue 11): f32/f16/bf16 files give the same top token at every position of the
// 32-token batch and the same 16 greedy tokens, with per-position cosine >= 0.99999 (only the
// summation order of the partial outputs differs). Quantized files: per-position cosine >= 0.999,
// the golden tolerance: a rank's columns are whole quantized blocks, so its integer dot products
// are the single node's, but where heads split a block (the goldens' 128-column head groups of
// Q4_K wo) that rank keeps the exact weights in f32 and skips the 8-bit rounding of activations.
#include <gtest/gtest.h>

#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "engine/local_pipeline.h"
#include "gguf/reader.h"
#include "model/model.h"
#include "model/tensor_split.h"
#include "support/logits.h"
#include "support/test_data.h"
#include "support/thread_group_reducer.h"
#include "util/error.h"

namespace herd::engine {
namespace {

using herd::testing::argmax;
using herd::testing::cosine;

const std::vector<std::int32_t>& kInput = herd::testing::kGoldenInput;
constexpr int kGreedy = 16;

const char* const kStems[] = {
    "llama-f32",     "llama-f16",      "llama-bf16",      "llama-q8_0",     "llama-q4_0",
    "llama-q4_k_m",  "llama-moe-f16",  "llama-moe-q4_0",  "qwen2-f16",      "qwen2-q8_0",
    "qwen2-q4_k_m",  "qwen2moe-f16",   "qwen2moe-q8_0",   "qwen3-f16",      "qwen3-q4_k_m",
    "qwen3moe-f16",  "qwen3moe-q4_k_m", "deepseek2-f16",  "deepseek2-q8_0", "deepseek2-q4_k_m",
};

using herd::testing::is_float_type;

// The batch's logits [32, n_vocab] and the greedy tokens after it.
struct Output {
  std::vector<float> logits;
  std::vector<std::int32_t> greedy;
};

Output run_model(std::shared_ptr<const model::Model> model, ThreadPool& pool,
                 model::Reducer* reducer) {
  LocalPipeline pipe(std::move(model), 64, pool, 1, reducer);
  Output out;
  pipe.forward(kInput, 0, true, out.logits);
  const int n_vocab = pipe.n_vocab();
  std::int32_t token = argmax(out.logits.data() + (kInput.size() - 1) * n_vocab, n_vocab);
  std::vector<float> step;
  for (int i = 0; i < kGreedy; ++i) {
    out.greedy.push_back(token);
    pipe.forward(std::span(&token, 1), static_cast<int>(kInput.size()) + i, false, step);
    token = argmax(step.data(), n_vocab);
  }
  return out;
}

// Every rank of a group with these weights, each on its own thread; rank 0's output, after
// checking that every rank computed bitwise the same logits.
Output run_group(std::shared_ptr<const gguf::File> file, const std::vector<double>& weights) {
  const int n = static_cast<int>(weights.size());
  herd::testing::ThreadGroup group(n);
  std::vector<Output> outs(n);
  std::vector<std::string> errors(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      try {
        auto model = model::Model::load(file, {}, model::TensorShare{r, weights});
        ThreadPool pool(1);
        outs[r] = run_model(model, pool, &group.reducer(r));
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < n; ++r) EXPECT_EQ(errors[r], "") << "rank " << r;
  for (int r = 1; r < n; ++r) {
    EXPECT_EQ(outs[r].logits, outs[0].logits) << "rank " << r << " parted from rank 0";
    EXPECT_EQ(outs[r].greedy, outs[0].greedy) << "rank " << r;
  }
  return outs[0];
}

struct Split {
  const char* name;
  std::vector<double> weights;
};

class TensorParallelGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(TensorParallelGolden, GroupsGiveWhatOneNodeGives) {
  const std::string stem = GetParam();
  HERD_REQUIRE_SHARED(path, "golden/" + stem + ".gguf");
  auto file = std::make_shared<const gguf::File>(gguf::File::open(path.string()));
  ThreadPool pool(1);
  const Output one = run_model(model::Model::load(file), pool, nullptr);
  const int n_vocab = static_cast<int>(one.logits.size() / kInput.size());
  // Quantized MoE: where a rank keeps f32 weights (heads splitting a block) the hidden state
  // moves by rounding steps, and a router near-tie may then pick another expert (as between
  // llama.cpp and us, golden_logits_test.cpp). deepseek2-q4_k_m split 1:3 does so at two
  // positions, where the second and third expert's scores were 6e-5 and 8e-5 apart (measured);
  // such a position parts to cosine ~0.9. Every other position must agree.
  const bool flips_allowed = !is_float_type(stem) && (stem.find("moe") != std::string::npos ||
                                                      stem.starts_with("deepseek2"));

  const Split splits[] = {{"2 even", {1, 1}}, {"3 even", {1, 1, 1}}, {"2 uneven", {1, 3}}};
  for (const Split& split : splits) {
    SCOPED_TRACE(split.name);
    const Output group = run_group(file, split.weights);
    ASSERT_EQ(group.logits.size(), one.logits.size());
    double worst = 1.0;
    int below = 0;
    for (std::size_t p = 0; p < kInput.size(); ++p) {
      const float* a = one.logits.data() + p * n_vocab;
      const float* b = group.logits.data() + p * n_vocab;
      const double c = cosine(a, b, n_vocab);
      if (c < 0.999) {
        ++below;
        EXPECT_GE(c, 0.85) << "position " << p;
        std::printf("[ split    ] %s %s: position %zu cosine %.6f\n", stem.c_str(), split.name, p, c);
      } else {
        worst = std::min(worst, c);
      }
      if (is_float_type(stem)) {
        EXPECT_EQ(argmax(a, n_vocab), argmax(b, n_vocab)) << "position " << p;
      }
    }
    EXPECT_GE(worst, is_float_type(stem) ? 0.99999 : 0.999);
    EXPECT_LE(below, flips_allowed ? 2 : 0) << "positions below cosine 0.999";
    if (is_float_type(stem)) {
      EXPECT_EQ(group.greedy, one.greedy);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllGoldens, TensorParallelGolden, ::testing::ValuesIn(kStems),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

model::HParams hparams(int n_head, int n_head_kv, int n_ff, int n_expert = 0) {
  model::HParams hp;
  hp.n_head = n_head;
  hp.n_head_kv = n_head_kv;
  hp.n_ff = n_ff;
  hp.n_expert = n_expert;
  return hp;
}

TEST(TensorSlice, SharesFollowTheWeights) {
  const auto hp = hparams(32, 8, 8192, 6);
  const std::vector<double> w = {1, 1, 2};
  int heads = 0, experts = 0;
  std::int64_t cols = 0;
  for (int r = 0; r < 3; ++r) {
    const auto s = model::tensor_slice(hp, w, r);
    EXPECT_EQ(s.kv_head0, heads);
    EXPECT_EQ(s.expert0, experts);
    EXPECT_EQ(s.columns(8192).first, cols);
    EXPECT_EQ(s.columns(8192).count % 256, 0) << "whole Q4_K blocks";
    heads += s.n_head_kv;
    experts += s.n_expert;
    cols += s.columns(8192).count;
  }
  EXPECT_EQ(heads, 8);
  EXPECT_EQ(experts, 6);
  EXPECT_EQ(cols, 8192);
  EXPECT_EQ(model::tensor_slice(hp, w, 2).n_head_kv, 4);  // half the speed, half the heads
  EXPECT_EQ(model::tensor_slice(hp, w, 2).columns(8192).count, 4096);
}

TEST(TensorSlice, MoreRanksThanKvHeadsLeaveSomeWithoutAttention) {
  const auto hp = hparams(4, 2, 768);
  const std::vector<double> w = {1, 1, 1};
  EXPECT_EQ(model::tensor_slice(hp, w, 0).n_head_kv + model::tensor_slice(hp, w, 1).n_head_kv +
                model::tensor_slice(hp, w, 2).n_head_kv,
            2);
  EXPECT_EQ(model::tensor_slice(hp, w, 2).columns(768).count, 256);
}

TEST(TensorSlice, RejectsARankWithoutWorkAndBadWeights) {
  const auto hp = hparams(2, 1, 256);
  const std::vector<double> three = {1, 1, 1};
  EXPECT_THROW(model::tensor_slice(hp, three, 2), InvalidArgument);
  const std::vector<double> bad = {1, 0};
  EXPECT_THROW(model::tensor_slice(hp, bad, 0), InvalidArgument);
  const std::vector<double> two = {1, 1};
  EXPECT_THROW(model::tensor_slice(hp, two, 2), InvalidArgument);
}

TEST(TensorSlice, ProportionalSplitSumsToTheTotal) {
  const std::vector<double> w = {1, 1, 1};
  EXPECT_EQ(model::proportional_split(8, w), (std::vector<std::int64_t>{3, 3, 2}));
  const std::vector<double> u = {3, 1};
  EXPECT_EQ(model::proportional_split(3, u), (std::vector<std::int64_t>{2, 1}));
}

TEST(TensorSlice, AStageHoldingASliceNeedsAReducer) {
  HERD_REQUIRE_SHARED(path, "golden/llama-f32.gguf");
  auto file = std::make_shared<const gguf::File>(gguf::File::open(path.string()));
  const std::vector<double> w = {1, 1};
  auto model = model::Model::load(file, {}, model::TensorShare{0, w});
  ThreadPool pool(1);
  EXPECT_THROW(LocalPipeline(model, 16, pool), InvalidArgument);
}

}  // namespace
}  // namespace herd::engine
