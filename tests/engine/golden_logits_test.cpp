// Every model in ../shared/golden against what llama.cpp computed for it (golden/README.md):
// the logits of a 32-token batch and the 16 greedy tokens that follow.
//
// Tolerances: per-position cosine >= 0.999 for every file (README: two correct engines agree to
// >= 0.9993 on dense quantized models; llama.cpp also rounds activations to 8 bits before
// quantized dot products and keeps an f16 KV cache, we keep f32). Quantized MoE files may part
// at one position where the router's top-k is a near-tie (see below; README: even llama.cpp and
// ik_llama.cpp differ there). Greedy tokens must be identical for f32/f16/bf16; for
// quantized files each reference token must be our top token or within 0.1 of its logit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/local_pipeline.h"
#include "gguf/reader.h"
#include "model/model.h"
#include "support/logits.h"
#include "support/test_data.h"

namespace herd::engine {
namespace {

const std::vector<std::int32_t>& kInput = herd::testing::kGoldenInput;

const char* const kStems[] = {
    "llama-f32",       "llama-f16",       "llama-bf16",      "llama-q8_0",      "llama-q4_0",
    "llama-q4_k_m",    "llama-pure-q4_1", "llama-pure-q5_0", "llama-pure-q5_1", "llama-pure-q2_k",
    "llama-pure-q3_k", "llama-pure-q4_k", "llama-pure-q5_k", "llama-pure-q6_k", "llama-moe-f16",
    "llama-moe-q4_0",  "qwen2-f16",       "qwen2-q8_0",      "qwen2-q4_k_m",    "qwen2moe-f16",
    "qwen2moe-q8_0",   "qwen2moe-q4_k_m", "qwen3-f16",       "qwen3-q8_0",      "qwen3-q4_k_m",
    "qwen3moe-f16",    "qwen3moe-q4_k_m", "deepseek2-f16",   "deepseek2-q8_0",  "deepseek2-q4_k_m",
};

using herd::testing::is_float_type;

bool is_moe(const std::string& stem) {
  return stem.find("moe") != std::string::npos || stem.starts_with("deepseek2");
}

using herd::testing::argmax;
using herd::testing::cosine;

ThreadPool& pool() {
  static ThreadPool p(2);
  return p;
}

class GoldenLogits : public ::testing::TestWithParam<const char*> {};

TEST_P(GoldenLogits, MatchesLlamaCppLogitsAndGreedyTokens) {
  const std::string stem = GetParam();
  HERD_REQUIRE_SHARED(gguf_path, "golden/" + stem + ".gguf");
  HERD_REQUIRE_SHARED(logits_path, "golden/" + stem + ".logits.f32");
  HERD_REQUIRE_SHARED(greedy_path, "golden/" + stem + ".greedy.txt");
  const auto ref = herd::testing::read_f32(logits_path);
  const auto greedy = herd::testing::read_ids(greedy_path);
  ASSERT_EQ(greedy.size(), 16u);

  auto file = std::make_shared<const gguf::File>(gguf::File::open(gguf_path.string()));
  auto model = model::Model::load(file);
  const int n_vocab = model->n_vocab();
  const int n_tok = static_cast<int>(kInput.size());
  ASSERT_EQ(ref.size(), static_cast<std::size_t>(n_tok) * n_vocab);

  LocalPipeline pipe(model, 64, pool());
  std::vector<float> logits;
  pipe.forward(kInput, 0, true, logits);
  ASSERT_EQ(logits.size(), ref.size());

  // Quantized MoE: a router near-tie (we measured top-k margins of 0.0002..0.002 at the
  // positions concerned) can pick another expert than llama.cpp, whose activations are rounded
  // to 8 bits; such a position then parts (cosine down to ~0.91). Allow one such position; every
  // other position must still reach 0.999.
  const bool flips_allowed = is_moe(stem) && !is_float_type(stem);
  double worst = 1.0, max_abs = 0.0;
  int below = 0;
  for (int t = 0; t < n_tok; ++t) {
    const double c = cosine(logits.data() + t * n_vocab, ref.data() + t * n_vocab, n_vocab);
    worst = std::min(worst, c);
    if (c < 0.999) ++below;
    EXPECT_GE(c, flips_allowed ? 0.9 : 0.999) << stem << " position " << t;
  }
  EXPECT_LE(below, flips_allowed ? 1 : 0) << stem << ": positions below cosine 0.999";
  for (std::size_t i = 0; i < ref.size(); ++i)
    max_abs = std::max(max_abs, double(std::abs(logits[i] - ref[i])));
  RecordProperty("min_cosine", std::to_string(worst));
  RecordProperty("max_abs_diff", std::to_string(max_abs));
  std::printf("[ golden   ] %-18s min cosine %.6f  max |diff| %.4f  positions < 0.999: %d\n",
              stem.c_str(), worst, max_abs, below);

  // Decode: one token at a time through the KV cache.
  std::vector<float> last(logits.end() - n_vocab, logits.end());
  std::vector<std::int32_t> ours;
  for (int step = 0; step < 16; ++step) {
    const int top = argmax(last.data(), n_vocab);
    ours.push_back(top);
    if (!is_float_type(stem)) {
      const float ref_logit = last[greedy[step]];
      EXPECT_TRUE(top == greedy[step] || last[top] - ref_logit <= 0.1f)
          << stem << " step " << step << ": reference token " << greedy[step] << " has logit "
          << ref_logit << ", ours " << top << " has " << last[top];
    }
    // Float types follow their own choices (they must equal the reference); quantized ones
    // follow the reference so one near-tie does not derail the rest.
    const std::int32_t next = is_float_type(stem) ? top : greedy[step];
    if (step + 1 < 16) {
      pipe.forward(std::span(&next, 1), n_tok + step, false, last);
    }
  }
  if (is_float_type(stem)) {
    EXPECT_EQ(ours, std::vector<std::int32_t>(greedy.begin(), greedy.end())) << stem;
  }
}

INSTANTIATE_TEST_SUITE_P(Shared, GoldenLogits, ::testing::ValuesIn(kStems), [](const auto& info) {
  std::string name = info.param;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
});

TEST(GoldenLogits, EveryGoldenFileIsCovered) {
  const auto dir = herd::testing::shared_dir();
  if (dir.empty() || !std::filesystem::is_directory(dir / "golden")) {
    GTEST_SKIP() << "../shared/golden not found";
  }
  std::set<std::string> known(std::begin(kStems), std::end(kStems));
  for (const auto& entry : std::filesystem::directory_iterator(dir / "golden")) {
    if (entry.path().extension() != ".gguf") continue;
    EXPECT_TRUE(known.count(entry.path().stem().string()))
        << entry.path().filename() << " has no test case";
  }
}

}  // namespace
}  // namespace herd::engine
