// A decode-shaped batch (kernels/decode_shaped.h) computes every position bit for bit as decoding
// the tokens one at a time does: what a resumed request's rebuilt cache relies on
// (engine/pipeline_recovery.h). Checked on golden models of several architectures and types,
// with 1 and 2 threads.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include "engine/local_pipeline.h"
#include "engine/scheduler.h"
#include "gguf/reader.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "support/test_data.h"

namespace herd::engine {
namespace {

std::vector<float> decoded_one_by_one(LocalPipeline& p, const std::vector<std::int32_t>& tokens) {
  std::vector<float> all;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    std::vector<float> one;
    p.forward(std::span(tokens).subspan(i, 1), static_cast<std::int32_t>(i), true, one);
    all.insert(all.end(), one.begin(), one.end());
  }
  return all;
}

std::vector<float> decode_shaped_batch(LocalPipeline& p, const std::vector<std::int32_t>& tokens,
                                       int first_chunk) {
  // The first tokens as an ordinary prefill chunk (a prompt), the rest decode-shaped at once.
  std::vector<float> all;
  Batch prompt;
  prompt.all_logits = true;
  prompt.add(0, 0, std::span(tokens).subspan(0, first_chunk), true);
  p.run(prompt, all);
  Batch rest;
  rest.all_logits = true;
  rest.decode_shaped = true;
  rest.add(0, first_chunk, std::span(tokens).subspan(first_chunk), true);
  std::vector<float> more;
  p.run(rest, more);
  all.insert(all.end(), more.begin(), more.end());
  return all;
}

void expect_same_as_decoding(const std::filesystem::path& path, int threads) {
  auto file = std::make_shared<const gguf::File>(gguf::File::open(path.string()));
  auto model = model::Model::load(file);
  std::vector<std::int32_t> tokens;
  for (int r = 0; r < 3; ++r)  // 96 positions: past the micro-batch and tile sizes
    for (std::int32_t t : herd::testing::kGoldenInput) tokens.push_back((t + 7 * r) % model->n_vocab());
  ThreadPool pool(threads);
  // One token first: its prefill is a decode step, so the whole sequence must match.
  LocalPipeline a(model, 256, pool, 1), b(model, 256, pool, 1);
  const std::vector<float> expected = decoded_one_by_one(a, tokens);
  const std::vector<float> got = decode_shaped_batch(b, tokens, 1);
  ASSERT_EQ(got.size(), expected.size());
  std::size_t differ = 0, first = got.size();
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (got[i] != expected[i] && first == got.size()) first = i;
    differ += got[i] != expected[i];
  }
  EXPECT_EQ(differ, 0u) << path.filename() << " with " << threads << " thread(s), from position "
                        << first / static_cast<std::size_t>(model->n_vocab());
}

TEST(DecodeShaped, EqualsDecodingOneTokenAtATimeBitForBit) {
  for (const char* stem : {"llama-q4_0", "llama-f16", "qwen3-q4_k_m", "qwen2-q8_0",
                           "qwen3moe-q4_k_m", "deepseek2-q8_0", "llama-moe-q4_0"}) {
    const auto path = herd::testing::shared_file(std::string("golden/") + stem + ".gguf");
    if (path.empty()) GTEST_SKIP() << "../shared/golden not found";
    for (int threads : {1, 2}) expect_same_as_decoding(path, threads);
  }
  // Optionally a model of real size (e.g. herd synth's 1B), where the multi-row kernels differ.
  if (const char* extra = std::getenv("HERD_DECODE_SHAPED_MODEL")) {
    for (int threads : {1, 2}) expect_same_as_decoding(extra, threads);
  }
}

// A pipeline that fails once, after `steps` batches (a node lost).
class FailingOnce : public Pipeline {
 public:
  FailingOnce(Pipeline& inner, int steps) : inner_(inner), left_(steps) {}
  void run(const Batch& batch, std::vector<float>& logits) override {
    if (left_-- == 0) fail("node lost");
    inner_.run(batch, logits);
  }
  void forget(std::int32_t seq, std::int32_t n) override { inner_.forget(seq, n); }
  void copy_prefix(std::int32_t a, std::int32_t b, std::int32_t n) override {
    inner_.copy_prefix(a, b, n);
  }
  std::int32_t n_ctx() const override { return inner_.n_ctx(); }
  std::int32_t n_vocab() const override { return inner_.n_vocab(); }
  std::int32_t n_seqs() const override { return inner_.n_seqs(); }

 private:
  Pipeline& inner_;
  int left_;
};

struct Replacement : PipelineRecovery {
  explicit Replacement(Pipeline& p) : next(p) {}
  bool wants_rebuild() const override { return false; }
  Pipeline& rebuild(std::exception_ptr) override { return next; }
  Pipeline& next;
};

// Through the scheduler: a request whose pipeline fails mid-answer goes on on a fresh one with
// exactly the greedy tokens of an uninterrupted run, wherever the failure falls.
TEST(DecodeShaped, AResumedRequestGivesTheUninterruptedTokens) {
  const char* extra = std::getenv("HERD_DECODE_SHAPED_MODEL");
  const auto path = extra ? std::filesystem::path(extra)
                          : herd::testing::shared_file("golden/qwen3-q4_k_m.gguf");
  if (path.empty()) GTEST_SKIP() << "../shared/golden not found";
  auto file = std::make_shared<const gguf::File>(gguf::File::open(path.string()));
  auto model = model::Model::load(file);
  auto tokenizer = model::Tokenizer::from_gguf(file->metadata());
  ThreadPool pool(std::getenv("HERD_DECODE_SHAPED_THREADS") ? std::atoi(std::getenv("HERD_DECODE_SHAPED_THREADS")) : 2);
  std::vector<std::int32_t> prompt = herd::testing::kGoldenInput;
  prompt.resize(7);
  for (auto& t : prompt) t %= model->n_vocab();
  GenerationParams p;
  p.max_tokens = std::getenv("HERD_DECODE_SHAPED_TOKENS") ? std::atoi(std::getenv("HERD_DECODE_SHAPED_TOKENS")) : 40;
  p.sampling.temperature = 0.0f;
  p.ignore_eos = true;
  auto generate = [&](Pipeline& pipe, PipelineRecovery* recovery) {
    Scheduler s(*tokenizer, pipe, {.max_running = 1}, Scheduler::Clock::now, recovery);
    auto t = s.submit(prompt, p);
    for (int i = 0; i < 1000 && s.step(); ++i) {
    }
    t->rethrow();
    return t->result().tokens;
  };
  LocalPipeline reference(model, 512, pool, 1);
  const std::vector<std::int32_t> expected = generate(reference, nullptr);
  for (int fail_at : {2, 9, 25, 80}) {
    LocalPipeline a(model, 512, pool, 1), b(model, 512, pool, 1);
    FailingOnce failing(a, fail_at);
    Replacement recovery(b);
    EXPECT_EQ(generate(failing, &recovery), expected) << "failed at batch " << fail_at;
  }
}

}  // namespace
}  // namespace herd::engine
