// The server's scheduler: many requests share one pipeline. It owns the queue and, every step,
// builds one batch with a decode token for each running sequence and chunks of waiting prompts
// (chunked prefill under a token budget), so a long prompt never stalls the streams already
// running; a sequence that finishes or is cancelled frees its KV slot at once for the next.
//
//   submit() ──> waiting (bounded; Overloaded beyond) ──> running (one KV slot each, at most
//   max_running) ──> finished: text streamed through the request's Ticket as it is sampled.
//
// With a pipeline of several stages it keeps up to max_in_flight() batches in flight, splitting
// the running sequences between them, so every stage works on one while the next works on
// another. A new request reuses the longest cached prefix of its prompt: the KV of a free slot
// that held it (the next turn of a chat), or a copy from another slot (a shared system prompt).
//
// Threading: submit(), metrics() and the Tickets are thread-safe. The steps run on the
// scheduler's own thread (start()) or, in tests, on the caller's (step()).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/generator.h"
#include "engine/pipeline.h"
#include "engine/pipeline_recovery.h"
#include "engine/sampler.h"
#include "engine/text_stream.h"
#include "engine/ticket.h"
#include "util/error.h"
#include "util/histogram.h"
#include "util/rate_history.h"

namespace herd::model {
class Tokenizer;
}

namespace herd::engine {

// The queue is full: the request was not taken. retry_after_s estimates when it may be.
class Overloaded : public Error {
 public:
  Overloaded(const std::string& what, int retry_after_s) : Error(what), retry_after_s(retry_after_s) {}
  int retry_after_s;
};

// The scheduler was stopped: no new request is taken.
class ShuttingDown : public Error {
 public:
  using Error::Error;
};

struct SchedulerOptions {
  int max_running = 8;     // sequences generating at once (--parallel); <= pipeline.n_seqs()
  int batch_tokens = 512;  // most tokens in one batch (--batch-tokens)
  int max_waiting = 64;    // requests queued beyond the running ones; more are refused
  // While sequences decode, a prompt chunk is sized so that the step takes at most this many
  // times a decode-only step (from the measured cost per prompt token): the running streams'
  // inter-token latency stays within this factor while a long prompt is prefilled.
  double max_step_ratio = 2.0;
  int min_chunk = 16;  // fewest prompt tokens a chunk takes while others decode
  // A prefix held by another slot is copied when it is at least this many tokens longer than
  // what the new request's own slot holds (a copy is memory traffic, recomputing is compute).
  int min_copy_tokens = 32;
};

// What GET /metrics and /v1/cluster show.
struct SchedulerMetrics {
  int waiting = 0;
  int running = 0;
  int max_running = 0;
  int last_batch_tokens = 0;
  int last_batch_sequences = 0;
  std::uint64_t steps = 0;
  std::uint64_t batch_tokens_total = 0;
  std::uint64_t rejected = 0;
  std::uint64_t cancelled = 0;
  std::uint64_t cached_prompt_tokens = 0;
  std::uint64_t generated_tokens = 0;
  std::uint64_t recoveries = 0;   // pipelines rebuilt after a failure (a node lost)
  std::uint64_t replans = 0;      // pipelines changed at a quiet moment (a node joined)
  std::uint64_t resumed = 0;      // sequences whose cache was rebuilt to go on after a change
  std::string unavailable;        // why no pipeline serves now ("" while one does)
  RateHistory generated{60};  // tokens sampled per second, over the last minute
  Histogram itl{{0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5}};
  Histogram batch_size{{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048}};  // tokens per batch
};

class Scheduler {
 public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;

  // Both must outlive the scheduler, which is the pipeline's only user. `now` is the clock
  // (tests pass a fake one). With `recovery` (which must outlive the scheduler too), a pipeline
  // that fails is rebuilt and the running requests go on (pipeline_recovery.h); without, they
  // fail with the pipeline's error.
  Scheduler(const model::Tokenizer& tokenizer, Pipeline& pipeline, SchedulerOptions options,
            Now now = Clock::now, PipelineRecovery* recovery = nullptr);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request. InvalidArgument when the prompt is empty, holds ids outside the vocabulary
  // or does not fit the context with max_tokens; Overloaded when the queue is full; ShuttingDown
  // after stop(); Unavailable while no pipeline can be built.
  std::shared_ptr<Ticket> submit(std::vector<std::int32_t> prompt, GenerationParams params);

  // Runs steps on a thread of the scheduler's own until stop() (or destruction). stop() fails
  // what is still queued or running and returns once the thread no longer touches the pipeline.
  void start();
  void stop();
  // Graceful shutdown: no new request is taken (ShuttingDown); those queued and running go on.
  void stop_admitting();
  // Nothing queued or running.
  bool idle() const;
  // One step: admit waiting requests, submit batches, collect one batch's logits and sample.
  // Returns false when there was nothing to do.
  bool step();

  SchedulerMetrics metrics() const;
  const SchedulerOptions& options() const { return options_; }

 private:
  struct Sequence;
  struct Slot {
    std::vector<std::int32_t> tokens;  // what its cache holds (or will, once in-flight batches land)
    Sequence* owner = nullptr;
    std::uint64_t last_used = 0;
  };
  struct InFlight {
    std::vector<Sequence*> logits_of;  // the sequence of each logits row, in order
    std::vector<Sequence*> members;
    int prompt_tokens = 0;
    int decode_tokens = 0;
    bool decode_shaped = false;  // a replay: slower per token than a prefill, not learnt from
    Clock::time_point submitted;
  };

  void admit(std::unique_lock<std::mutex>& lock);
  int choose_slot(const std::vector<std::int32_t>& prompt, bool reuse, int& keep,
                  int& copy_from) const;
  bool build_batch(Batch& batch, InFlight& flight);
  int prompt_chunk_limit(bool decoding) const;
  void process(InFlight& flight, const std::vector<float>& logits);
  void sample(Sequence& s, const float* logits);
  void finish(Sequence& s, const char* reason);
  void reap();
  void fail_all(std::exception_ptr error, bool reset_caches = true);
  // A pipeline error: rebuilt through recovery_ when there is one, else every request fails.
  void on_failure(std::exception_ptr error);
  // Asks recovery_ for the next pipeline (failure null: a planned change, nothing in flight) and
  // resumes the running sequences on it; without one, fails everything with the reason.
  void replace_pipeline(std::exception_ptr failure);
  // Every running sequence starts over on the new pipeline: its prompt and what it generated
  // are prefilled again (its sampler, constraint and text so far are kept).
  void resume_all();
  void learn_step_cost(const InFlight& flight, double seconds);
  void loop();

  const model::Tokenizer& tokenizer_;
  Pipeline* pipeline_;  // null while none can serve (recovery_ failed to build one)
  PipelineRecovery* recovery_;
  const std::int32_t n_ctx_;
  const std::int32_t n_vocab_;
  SchedulerOptions options_;
  int wanted_running_;  // options_.max_running as asked; a smaller pipeline may lower it
  Now now_;

  mutable std::mutex mutex_;  // guards waiting_, metrics_, stop_
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  SchedulerMetrics metrics_;
  bool stop_ = false;
  bool admitting_ = true;
  std::string unavailable_;  // why submit() refuses: no pipeline ("" while one serves)
  std::thread thread_;

  // Owned by the stepping thread.
  std::vector<std::unique_ptr<Sequence>> running_;
  std::vector<Slot> slots_;
  std::deque<InFlight> in_flight_;
  std::vector<float> logits_;
  std::uint64_t tick_ = 0;
  std::uint64_t arrivals_ = 0;
  Clock::time_point last_collect_{};
  double decode_step_s_ = 0;        // measured: a step of decode tokens only
  double prompt_token_s_ = 0;       // measured: extra seconds per prompt token in a step
};

}  // namespace herd::engine
