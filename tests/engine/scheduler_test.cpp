#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "engine/fake_pipeline.h"

namespace herd::engine {
namespace {

using namespace std::chrono_literals;

// A clock that moves only when told: the fake pipeline advances it per batch.
struct FakeClock {
  Scheduler::Clock::time_point t{};
  Scheduler::Now now() {
    return [this] { return t; };
  }
};

GenerationParams greedy(int max_tokens) {
  GenerationParams p;
  p.max_tokens = max_tokens;
  p.sampling.temperature = 0.0f;
  return p;
}

std::vector<std::int32_t> bytes(const std::string& text) {
  std::vector<std::int32_t> ids;
  for (unsigned char c : text) ids.push_back(c);
  return ids;
}

// Every sequence answers the byte after its last one ("a" -> "bcd..."), ending after `n`.
FakePipeline::Script counting() {
  return [](const std::vector<std::int32_t>& c) -> std::int32_t { return (c.back() + 1) % 256; };
}

void run_until_idle(Scheduler& s, int max_steps = 10000) {
  for (int i = 0; i < max_steps && s.step(); ++i) {
  }
}

int tokens_of(const Batch& b) {
  return static_cast<int>(b.tokens.size());
}

TEST(Scheduler, DecodesEveryRunningSequenceInOneBatch) {
  ByteTokenizer tok;
  FakePipeline pipe(64, counting(), /*n_seqs=*/4);
  Scheduler s(tok, pipe, {.max_running = 4});
  std::vector<std::shared_ptr<Ticket>> tickets;
  for (const char* p : {"a", "k", "u"}) tickets.push_back(s.submit(bytes(p), greedy(5)));
  run_until_idle(s);
  std::vector<std::string> texts;
  for (auto& t : tickets) {
    ASSERT_TRUE(t->finished());
    texts.push_back(t->result().text);
    EXPECT_EQ(t->result().stats.finish_reason, "length");
  }
  EXPECT_EQ(texts, (std::vector<std::string>{"bcdef", "lmnop", "vwxyz"}));
  // One batch of three prompts, then four of three decode tokens each.
  ASSERT_EQ(pipe.batches.size(), 5u);
  for (const Batch& b : pipe.batches) EXPECT_EQ(b.runs.size(), 3u);
  for (std::size_t i = 1; i < pipe.batches.size(); ++i) EXPECT_EQ(tokens_of(pipe.batches[i]), 3);
}

TEST(Scheduler, LongPromptIsChunkedUnderTheBudgetWhileOthersDecode) {
  ByteTokenizer tok;
  FakePipeline pipe(256, counting(), 2);
  Scheduler s(tok, pipe, {.max_running = 2, .batch_tokens = 16, .min_chunk = 4});
  auto streaming = s.submit(bytes("a"), greedy(40));
  s.step();  // its prompt
  s.step();  // its first decode
  auto long_one = s.submit(std::vector<std::int32_t>(100, 'x'), greedy(3));
  run_until_idle(s);
  ASSERT_TRUE(streaming->finished());
  ASSERT_TRUE(long_one->finished());
  EXPECT_EQ(long_one->result().text, "yz{");
  int batches_with_prompt = 0;
  for (const Batch& b : pipe.batches) {
    EXPECT_LE(tokens_of(b), 16);
    bool has_prompt = false, has_decode = false;
    for (const BatchRun& r : b.runs) {
      if (r.seq == 0) has_decode = true;
      if (r.seq == 1 && r.n_tokens > 1) has_prompt = true;
    }
    if (has_prompt) {
      ++batches_with_prompt;
      // The stream keeps its token in every step the prompt is fed.
      EXPECT_TRUE(has_decode || streaming->result().stats.generated_tokens == 40);
    }
  }
  EXPECT_GE(batches_with_prompt, 100 / 16);
}

TEST(Scheduler, ChunksAreSizedFromTheMeasuredStepCost) {
  // A step costs 10 ms plus 1 ms per prompt token: with max_step_ratio 2, a chunk beside
  // decoding streams gets ~10 tokens, so their inter-token latency stays within ~2x.
  ByteTokenizer tok;
  FakeClock clock;
  FakePipeline pipe(512, counting(), 3);
  pipe.on_run = [&](const Batch& b) {
    int prompt = 0;
    for (const BatchRun& r : b.runs) prompt += r.n_tokens > 1 ? r.n_tokens : 0;
    clock.t += 10ms + prompt * 1ms;
  };
  Scheduler s(tok, pipe,
              {.max_running = 3, .batch_tokens = 256, .max_step_ratio = 2.0, .min_chunk = 4},
              clock.now());
  auto a = s.submit(bytes("a"), greedy(200));
  auto b = s.submit(bytes("b"), greedy(200));
  for (int i = 0; i < 20; ++i) s.step();
  auto long_one = s.submit(std::vector<std::int32_t>(300, 'x'), greedy(2));
  run_until_idle(s);
  ASSERT_TRUE(long_one->finished());
  std::vector<int> chunks;
  for (const Batch& batch : pipe.batches)
    for (const BatchRun& r : batch.runs)
      if (r.seq == 2 && r.n_tokens > 1) chunks.push_back(r.n_tokens);
  ASSERT_GT(chunks.size(), 3u);
  // The first chunk is min_chunk (nothing measured yet), later ones follow the measurement.
  EXPECT_EQ(chunks.front(), 4);
  EXPECT_NEAR(chunks[2], 10, 2);
  const SchedulerMetrics m = s.metrics();
  // Every inter-token gap is within 2x of a decode step (+ one token's cost of rounding).
  EXPECT_LE(m.itl.quantile_bound(1.0), 0.025);
  // Every sampled token is counted, and in the per-second history at the time it was sampled.
  const std::uint64_t sampled = a->result().stats.generated_tokens +
                                b->result().stats.generated_tokens +
                                long_one->result().stats.generated_tokens;
  EXPECT_EQ(m.generated_tokens, sampled);
  std::uint64_t in_history = 0;
  for (std::uint64_t n : m.generated.per_second(clock.t + 1s)) in_history += n;
  EXPECT_EQ(in_history, sampled);
}

TEST(Scheduler, OlderPromptsArePrefilledFirst) {
  ByteTokenizer tok;
  FakePipeline pipe(256, counting(), 2);
  Scheduler s(tok, pipe, {.max_running = 2, .batch_tokens = 8, .min_chunk = 8});
  auto first = s.submit(std::vector<std::int32_t>(20, 'a'), greedy(1));
  auto second = s.submit(std::vector<std::int32_t>(20, 'b'), greedy(1));
  s.step();
  ASSERT_EQ(pipe.batches.size(), 1u);
  ASSERT_EQ(pipe.batches[0].runs.size(), 1u);
  EXPECT_EQ(pipe.batches[0].runs[0].seq, 0);  // the older request's slot
  run_until_idle(s);
  EXPECT_TRUE(first->finished());
  EXPECT_TRUE(second->finished());
}

TEST(Scheduler, AdmitsUpToMaxRunningAndRefusesBeyondTheQueue) {
  ByteTokenizer tok;
  FakePipeline pipe(64, counting(), 4);
  Scheduler s(tok, pipe, {.max_running = 2, .max_waiting = 2});
  std::vector<std::shared_ptr<Ticket>> t;
  for (int i = 0; i < 4; ++i) t.push_back(s.submit(bytes("a"), greedy(3)));
  try {
    s.submit(bytes("a"), greedy(3));
    FAIL() << "a fifth request fits no queue of 2 beside 2 running";
  } catch (const Overloaded& e) {
    EXPECT_GE(e.retry_after_s, 1);
  }
  s.step();
  EXPECT_EQ(s.metrics().running, 2);
  EXPECT_EQ(s.metrics().waiting, 2);
  EXPECT_EQ(s.metrics().rejected, 1u);
  for (const Batch& b : pipe.batches) EXPECT_LE(b.runs.size(), 2u);
  run_until_idle(s);
  for (auto& ticket : t) {
    ASSERT_TRUE(ticket->finished());
    EXPECT_EQ(ticket->result().text, "bcd");
  }
  for (const Batch& b : pipe.batches) EXPECT_LE(b.runs.size(), 2u);
}

TEST(Scheduler, CancelledRequestsFreeTheirSlotAtOnce) {
  ByteTokenizer tok;
  FakePipeline pipe(256, counting(), 1);
  Scheduler s(tok, pipe, {.max_running = 1, .max_waiting = 4});
  auto running = s.submit(bytes("a"), greedy(100));
  auto queued = s.submit(bytes("b"), greedy(100));
  auto next = s.submit(bytes("c"), greedy(2));
  s.step();
  s.step();
  queued->cancel();
  running->cancel();
  s.step();  // reaps both; the slot goes to `next`
  EXPECT_TRUE(running->finished());
  EXPECT_EQ(running->result().stats.finish_reason, "cancelled");
  EXPECT_LT(running->result().stats.generated_tokens, 100);
  EXPECT_TRUE(queued->finished());
  EXPECT_EQ(queued->result().stats.finish_reason, "cancelled");
  run_until_idle(s);
  ASSERT_TRUE(next->finished());
  EXPECT_EQ(next->result().text, "de");
  EXPECT_EQ(s.metrics().cancelled, 2u);
}

TEST(Scheduler, NextTurnReusesTheCachedPrefix) {
  ByteTokenizer tok;
  FakePipeline pipe(256, counting(), 2);
  Scheduler s(tok, pipe, {.max_running = 2});
  auto first = s.submit(bytes("hello"), greedy(3));
  run_until_idle(s);
  ASSERT_EQ(first->result().text, "pqr");
  // The next turn resends everything so far ("hello" + "pqr") and adds to it.
  auto second = s.submit(bytes("hellopqr!!"), greedy(2));
  run_until_idle(s);
  ASSERT_TRUE(second->finished());
  // "hellopq" is cached ("r" was sampled but never run), so "r!!" is prefilled.
  EXPECT_EQ(second->result().stats.cached_prompt_tokens, 7);
  EXPECT_EQ(second->result().text, "\"#");
  const Batch& prefill = pipe.batches[pipe.batches.size() - 2];
  ASSERT_EQ(prefill.runs.size(), 1u);
  EXPECT_EQ(prefill.runs[0].pos0, 7);
  EXPECT_EQ(prefill.runs[0].n_tokens, 3);
  // cache_prompt false computes afresh, in the other (least recently used) slot, so the chat's
  // slot keeps its prefix for the turn after.
  GenerationParams fresh = greedy(2);
  fresh.cache_prompt = false;
  auto recomputed = s.submit(bytes("hellopqr!!"), fresh);
  run_until_idle(s);
  EXPECT_EQ(recomputed->result().stats.cached_prompt_tokens, 0);
  EXPECT_EQ(recomputed->result().text, "\"#");
  auto third = s.submit(bytes("hellopqr!!\"#"), greedy(1));
  run_until_idle(s);
  EXPECT_GE(third->result().stats.cached_prompt_tokens, 10);
}

TEST(Scheduler, SharedPrefixOfARunningSequenceIsCopied) {
  ByteTokenizer tok;
  FakePipeline pipe(512, counting(), 2);
  Scheduler s(tok, pipe, {.max_running = 2, .min_copy_tokens = 32});
  std::vector<std::int32_t> system(100, 's');
  std::vector<std::int32_t> a = system, b = system;
  a.push_back('a');
  b.push_back('b');
  auto first = s.submit(a, greedy(50));
  s.step();
  s.step();
  auto second = s.submit(b, greedy(2));
  run_until_idle(s);
  ASSERT_EQ(pipe.copies.size(), 1u);
  EXPECT_EQ(pipe.copies[0].src, 0);
  EXPECT_EQ(pipe.copies[0].dst, 1);
  EXPECT_EQ(pipe.copies[0].n, 100);
  EXPECT_EQ(second->result().stats.cached_prompt_tokens, 100);
  EXPECT_EQ(second->result().text, "cd");
  EXPECT_EQ(first->result().stats.generated_tokens, 50);
}

TEST(Scheduler, KeepsOneBatchPerStageInFlight) {
  ByteTokenizer tok;
  FakePipeline pipe(64, counting(), 4, /*depth=*/2);
  Scheduler s(tok, pipe, {.max_running = 4});
  std::vector<std::shared_ptr<Ticket>> t;
  for (const char* p : {"a", "e", "i", "m"}) t.push_back(s.submit(bytes(p), greedy(6)));
  run_until_idle(s);
  for (auto& ticket : t) ASSERT_EQ(ticket->result().stats.generated_tokens, 6);
  EXPECT_EQ(t[0]->result().text, "bcdefg");
  EXPECT_EQ(t[3]->result().text, "nopqrs");
  // After the first prompts, decode batches carry half of the four streams each.
  int halves = 0;
  for (const Batch& b : pipe.batches)
    if (b.runs.size() == 2 && tokens_of(b) == 2) ++halves;
  EXPECT_GE(halves, 8);
}

TEST(Scheduler, ALongPromptKeepsEveryStageBusy) {
  ByteTokenizer tok;
  FakePipeline pipe(256, counting(), 1, /*depth=*/3);
  int most_in_flight = 0;
  pipe.on_run = [&](const Batch&) { most_in_flight = std::max(most_in_flight, pipe.in_flight() + 1); };
  Scheduler s(tok, pipe, {.max_running = 1, .batch_tokens = 16});
  auto t = s.submit(std::vector<std::int32_t>(100, 'x'), greedy(2));
  run_until_idle(s);
  ASSERT_TRUE(t->finished());
  EXPECT_EQ(t->result().text, "yz");
  // Consecutive chunks of the one prompt were in flight together, one per stage.
  EXPECT_EQ(most_in_flight, 3);
}

TEST(Scheduler, APipelineFailureFailsTheRunningRequestsAndServingGoesOn) {
  ByteTokenizer tok;
  FakePipeline pipe(64, counting(), 2);
  Scheduler s(tok, pipe, {.max_running = 2});
  auto doomed = s.submit(bytes("a"), greedy(10));
  s.step();
  pipe.fail_next = true;
  s.step();
  EXPECT_TRUE(doomed->finished());
  EXPECT_THROW(doomed->rethrow(), Error);
  pipe.fail_next = false;
  auto after = s.submit(bytes("a"), greedy(3));
  run_until_idle(s);
  ASSERT_TRUE(after->finished());
  EXPECT_EQ(after->result().text, "bcd");
}

// OpenAI's logit_bias: -100 bans a token (the greedy choice moves to the next best), and an id
// outside the vocabulary is the request's error.
TEST(Scheduler, LogitBiasBansATokenAndIsChecked) {
  ByteTokenizer tok;
  FakePipeline pipe(64, counting(), 1);
  Scheduler s(tok, pipe, {});
  GenerationParams p = greedy(3);
  p.logit_bias = {{'c', -100.0f}};
  auto t = s.submit(bytes("a"), p);
  run_until_idle(s);
  ASSERT_TRUE(t->finished());
  // 'b' (the script's choice), then 'c' is banned: the fake's other logits are all 0, so the
  // lowest id wins.
  EXPECT_EQ(t->result().text.substr(0, 1), "b");
  EXPECT_EQ(t->result().text.find('c'), std::string::npos);
  p.logit_bias = {{kVocab, 1.0f}};
  EXPECT_THROW(s.submit(bytes("a"), p), InvalidArgument);
}

TEST(Scheduler, RejectsPromptsThatCannotFit) {
  ByteTokenizer tok;
  FakePipeline pipe(16, counting(), 1);
  Scheduler s(tok, pipe, {});
  EXPECT_THROW(s.submit({}, greedy(1)), InvalidArgument);
  EXPECT_THROW(s.submit(std::vector<std::int32_t>(10, 'a'), greedy(10)), InvalidArgument);
  EXPECT_THROW(s.submit({9999}, greedy(1)), InvalidArgument);
}

TEST(Scheduler, ThreadServesSubmittersUntilStopped) {
  ByteTokenizer tok;
  FakePipeline pipe(64, counting(), 2);
  Scheduler s(tok, pipe, {.max_running = 2});
  s.start();
  auto t = s.submit(bytes("a"), greedy(4));
  std::string text;
  t->wait_all(text);
  EXPECT_EQ(text, "bcde");
  // Stopping fails what still runs (here: a request that would run until the context is full)
  // and refuses new ones; the pipeline is no longer touched.
  auto endless = s.submit(bytes("a"), greedy(60));
  s.stop();
  EXPECT_TRUE(endless->finished());
  if (endless->result().stats.finish_reason != "length") {
    EXPECT_THROW(endless->rethrow(), Error);
  }
  EXPECT_THROW(s.submit(bytes("a"), greedy(1)), ShuttingDown);
}

}  // namespace
}  // namespace herd::engine
