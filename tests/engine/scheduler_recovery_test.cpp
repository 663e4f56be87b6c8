// The scheduler with a PipelineRecovery: a pipeline that fails (a node lost) is replaced and the
// running requests go on with exactly the text they would have had; a planned change waits for
// the batches in flight; no pipeline at all is HTTP 503 until one can be built again.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/fake_pipeline.h"
#include "engine/scheduler.h"

namespace herd::engine {
namespace {

GenerationParams greedy(int max_tokens) {
  GenerationParams p;
  p.max_tokens = max_tokens;
  p.sampling.temperature = 0.0f;
  p.ignore_eos = true;
  return p;
}

std::vector<std::int32_t> bytes(const std::string& text) {
  std::vector<std::int32_t> ids;
  for (unsigned char c : text) ids.push_back(c);
  return ids;
}

// The next byte depends on the whole cache (its sum), so a cache rebuilt wrongly (a token lost,
// doubled or out of order) changes every later token.
FakePipeline::Script history_dependent() {
  return [](const std::vector<std::int32_t>& c) -> std::int32_t {
    unsigned sum = 0;
    for (std::size_t i = 0; i < c.size(); ++i) sum = sum * 31 + static_cast<unsigned>(c[i]) + i;
    return static_cast<std::int32_t>('a' + sum % 26);
  };
}

void run_until_idle(Scheduler& s, int max_steps = 10000) {
  for (int i = 0; i < max_steps && s.step(); ++i) {
  }
}

// Hands out the pipelines of `next` in turn; throws Unavailable when they run out.
struct ScriptedRecovery : PipelineRecovery {
  std::vector<std::unique_ptr<FakePipeline>> next;
  std::size_t used = 0;
  int failures = 0, planned = 0;
  bool want = false;
  FakePipeline* current = nullptr;

  bool wants_rebuild() const override { return want; }
  Pipeline& rebuild(std::exception_ptr failure) override {
    (failure ? failures : planned)++;
    want = false;
    if (used == next.size()) throw Unavailable("the surviving nodes cannot hold the model");
    current = next[used++].get();
    return *current;
  }
};

std::vector<std::string> texts_alone(const std::vector<std::string>& prompts, int n) {
  ByteTokenizer tok;
  std::vector<std::string> out;
  for (const auto& p : prompts) {
    FakePipeline pipe(256, history_dependent(), 1);
    Scheduler s(tok, pipe, {.max_running = 1});
    auto t = s.submit(bytes(p), greedy(n));
    run_until_idle(s);
    EXPECT_TRUE(t->finished());
    out.push_back(t->result().text);
  }
  return out;
}

TEST(SchedulerRecovery, RequestsGoOnAfterAFailureWithTheSameText) {
  const std::vector<std::string> prompts = {"hello", "a longer prompt here", "x"};
  const std::vector<std::string> expected = texts_alone(prompts, 40);
  for (int depth : {1, 3}) {
    ByteTokenizer tok;
    FakePipeline first(256, history_dependent(), 4, depth);
    ScriptedRecovery recovery;
    // The replacement has fewer slots: one request waits for a place and still finishes.
    recovery.next.push_back(std::make_unique<FakePipeline>(256, history_dependent(), 2, depth));
    Scheduler s(tok, first, {.max_running = 4, .batch_tokens = 8}, Scheduler::Clock::now,
                &recovery);
    std::vector<std::shared_ptr<Ticket>> tickets;
    for (const auto& p : prompts) tickets.push_back(s.submit(bytes(p), greedy(40)));
    for (int i = 0; i < 12; ++i) s.step();
    first.fail_next = true;
    run_until_idle(s);
    EXPECT_EQ(recovery.failures, 1);
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      ASSERT_TRUE(tickets[i]->finished()) << i;
      tickets[i]->rethrow();
      EXPECT_EQ(tickets[i]->result().text, expected[i]) << "depth " << depth << ", request " << i;
      EXPECT_EQ(tickets[i]->result().stats.generated_tokens, 40);
      EXPECT_EQ(tickets[i]->result().stats.prompt_tokens, static_cast<int>(prompts[i].size()));
    }
    const SchedulerMetrics m = s.metrics();
    EXPECT_EQ(m.recoveries, 1u);
    EXPECT_GE(m.resumed, 1u);
    EXPECT_EQ(m.max_running, 2);
  }
}

// The cache is rebuilt in the shapes it was first computed in: the prompt in the chunks it ran
// in, then the generated tokens decode-shaped (kernels/decode_shaped.h), before the next sample.
TEST(SchedulerRecovery, TheCacheIsRebuiltInTheShapesItWasFirstComputedIn) {
  ByteTokenizer tok;
  FakePipeline first(256, history_dependent(), 1);
  ScriptedRecovery recovery;
  recovery.next.push_back(std::make_unique<FakePipeline>(256, history_dependent(), 1));
  Scheduler s(tok, first, {.max_running = 1, .batch_tokens = 4}, Scheduler::Clock::now,
              &recovery);
  auto t = s.submit(bytes("abcdefghij"), greedy(12));  // prefilled in chunks of 4, 4, 2
  for (int i = 0; i < 8; ++i) s.step();  // 3 prompt chunks, then 5 decode steps
  first.fail_next = true;
  run_until_idle(s);
  ASSERT_TRUE(t->finished());
  EXPECT_EQ(t->result().text, texts_alone({"abcdefghij"}, 12)[0]);
  const auto& again = recovery.current->batches;
  ASSERT_GE(again.size(), 4u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(again[i].decode_shaped) << i;
    EXPECT_EQ(again[i].runs[0].n_tokens, i < 2 ? 4 : 2) << i;
  }
  // The tokens generated before the failure: decode-shaped, in batches of at most 4.
  int replayed = 0;
  std::size_t b = 3;
  for (; b < again.size() && again[b].decode_shaped; ++b) replayed += again[b].runs[0].n_tokens;
  EXPECT_EQ(replayed, 6);  // the first token came with the last prompt chunk, then 5 more
  EXPECT_FALSE(again[b].decode_shaped);  // and decoding goes on as usual
}

TEST(SchedulerRecovery, APlannedChangeWaitsForTheBatchesInFlight) {
  const std::vector<std::string> prompts = {"one", "two"};
  const std::vector<std::string> expected = texts_alone(prompts, 30);
  ByteTokenizer tok;
  FakePipeline first(256, history_dependent(), 2, /*depth=*/2);
  ScriptedRecovery recovery;
  recovery.next.push_back(std::make_unique<FakePipeline>(256, history_dependent(), 2, 2));
  Scheduler s(tok, first, {.max_running = 2}, Scheduler::Clock::now, &recovery);
  auto a = s.submit(bytes(prompts[0]), greedy(30));
  auto b = s.submit(bytes(prompts[1]), greedy(30));
  for (int i = 0; i < 10; ++i) s.step();
  const std::size_t batches_before = first.batches.size();
  recovery.want = true;
  run_until_idle(s);
  EXPECT_EQ(recovery.planned, 1);
  EXPECT_EQ(recovery.failures, 0);
  // Nothing new went to the old pipeline once the change was wanted.
  EXPECT_EQ(first.batches.size(), batches_before);
  EXPECT_EQ(s.metrics().replans, 1u);
  ASSERT_TRUE(a->finished() && b->finished());
  EXPECT_EQ(a->result().text, expected[0]);
  EXPECT_EQ(b->result().text, expected[1]);
}

TEST(SchedulerRecovery, NoPipelineIsUnavailableUntilOneCanBeBuilt) {
  ByteTokenizer tok;
  FakePipeline first(256, history_dependent(), 2);
  ScriptedRecovery recovery;  // nothing to replace it with
  Scheduler s(tok, first, {.max_running = 2}, Scheduler::Clock::now, &recovery);
  auto running = s.submit(bytes("abc"), greedy(20));
  s.step();
  first.fail_next = true;
  s.step();
  ASSERT_TRUE(running->finished());
  EXPECT_THROW(running->rethrow(), Unavailable);
  EXPECT_THROW(s.submit(bytes("abc"), greedy(5)), Unavailable);
  EXPECT_EQ(s.metrics().unavailable, "the surviving nodes cannot hold the model");
  EXPECT_FALSE(s.step());
  // Enough memory came back: a request waits for the rebuild instead of being refused.
  recovery.next.push_back(std::make_unique<FakePipeline>(256, history_dependent(), 2));
  recovery.want = true;
  auto after = s.submit(bytes("abc"), greedy(5));
  run_until_idle(s);
  ASSERT_TRUE(after->finished());
  after->rethrow();
  EXPECT_EQ(after->result().text, texts_alone({"abc"}, 5)[0]);
  EXPECT_TRUE(s.metrics().unavailable.empty());
}

TEST(SchedulerRecovery, ABadRequestIsNotAPipelineFailure) {
  ByteTokenizer tok;
  FakePipeline first(256, history_dependent(), 1);
  ScriptedRecovery recovery;
  Scheduler s(tok, first, {}, Scheduler::Clock::now, &recovery);
  auto t = s.submit(bytes("abc"), greedy(3));
  run_until_idle(s);
  EXPECT_EQ(recovery.failures, 0);
  EXPECT_EQ(t->result().stats.generated_tokens, 3);
}

}  // namespace
}  // namespace herd::engine
