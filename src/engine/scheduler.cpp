#include "engine/scheduler.h"

#include <algorithm>
#include <cmath>

#include "model/tokenizer.h"
#include "util/log.h"

namespace herd::engine {

struct Scheduler::Sequence {
  Sequence(std::vector<std::int32_t> p, GenerationParams g, std::int64_t max)
      : prompt(std::move(p)),
        params(std::move(g)),
        max_tokens(max),
        sampler(params.sampling),
        constraint(params.constraint ? params.constraint->start() : nullptr),
        stream(params.stop) {}

  std::shared_ptr<Ticket> ticket = std::make_shared<Ticket>();
  std::vector<std::int32_t> prompt;
  GenerationParams params;
  std::int64_t max_tokens;
  Sampler sampler;
  std::unique_ptr<ConstraintState> constraint;  // null: unconstrained
  std::vector<float> masked;                    // scratch: the logits the constraint allows
  TextStream stream;
  std::uint64_t order = 0;  // arrival number: older prompts are prefilled first
  int slot = -1;
  int prefilled = 0;            // prompt tokens in the cache or in flight (reused ones included)
  std::int32_t next = -1;       // sampled token still to be run (decode), -1 while prefilling
  int in_flight = 0;  // batches in flight that carry its tokens
  bool done = false;
  // Started over on a new pipeline (pipeline_recovery.h): `prompt` then holds the prompt and the
  // tokens generated before the change, and admission keeps the request's stats and sampler.
  bool resumed = false;
  int resumes = 0;
  // How its prompt was first prefilled (chunk lengths): a resumed sequence prefills its prompt in
  // the same chunks, and from replay_from on (the tokens it had generated) decode-shaped, so that
  // its cache is rebuilt bit for bit (kernels/decode_shaped.h). -1: nothing to replay so.
  std::vector<int> prompt_chunks;
  std::size_t next_chunk = 0;
  int replay_from = -1;
  GenerationResult result;
  Clock::time_point arrived, admitted, first_token_at, last_token_at;
};

namespace {

// A sequence whose pipeline fails this many times fails too: something other than a lost node
// (a bug, a poisoned input) would otherwise be retried forever.
constexpr int kMaxResumes = 3;

}  // namespace

Scheduler::Scheduler(const model::Tokenizer& tokenizer, Pipeline& pipeline,
                     SchedulerOptions options, Now now, PipelineRecovery* recovery)
    : tokenizer_(tokenizer),
      pipeline_(&pipeline),
      recovery_(recovery),
      n_ctx_(pipeline.n_ctx()),
      n_vocab_(pipeline.n_vocab()),
      options_(options),
      wanted_running_(std::max(options.max_running, 1)),
      now_(std::move(now)) {
  options_.max_running = std::clamp(options_.max_running, 1, pipeline_->n_seqs());
  options_.batch_tokens = std::max(options_.batch_tokens, 1);
  options_.min_chunk = std::clamp(options_.min_chunk, 1, options_.batch_tokens);
  options_.max_waiting = std::max(options_.max_waiting, 0);
  slots_.resize(static_cast<std::size_t>(pipeline_->n_seqs()));
  metrics_.max_running = options_.max_running;
}

Scheduler::~Scheduler() {
  stop();
}

std::shared_ptr<Ticket> Scheduler::submit(std::vector<std::int32_t> prompt,
                                          GenerationParams params) {
  const std::int64_t max_tokens =
      checked_max_tokens(prompt, params, n_ctx_, n_vocab_);
  auto seq = std::make_unique<Sequence>(std::move(prompt), std::move(params), max_tokens);
  seq->arrived = now_();
  std::shared_ptr<Ticket> ticket = seq->ticket;
  {
    std::lock_guard lock(mutex_);
    if (stop_) throw ShuttingDown("the server is shutting down");
    if (!admitting_)
      throw ShuttingDown(
          "the server is shutting down: it finishes the requests it has and takes no new ones");
    // No pipeline: refused, unless one is about to be built (then the request waits for it).
    if (!unavailable_.empty() && !(recovery_ && recovery_->wants_rebuild()))
      throw Unavailable(unavailable_);
    // Room: the free slots (admitted at the next step) plus the queue behind them.
    const int room = options_.max_waiting + std::max(options_.max_running - metrics_.running, 0);
    if (static_cast<int>(waiting_.size()) >= room) {
      ++metrics_.rejected;
      // Roughly when a place frees: the queue drains max_running requests per request time.
      const int retry = 1 + static_cast<int>(waiting_.size()) / std::max(options_.max_running, 1);
      throw Overloaded(fmt::format("the server is busy: {} requests are running and {} waiting; "
                                   "retry in {} s",
                                   metrics_.running, waiting_.size(), retry),
                       retry);
    }
    seq->order = arrivals_++;
    waiting_.push_back(std::move(seq));
    metrics_.waiting = static_cast<int>(waiting_.size());
  }
  wake_.notify_all();
  return ticket;
}

void Scheduler::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { loop(); });
}

void Scheduler::stop_admitting() {
  std::lock_guard lock(mutex_);
  admitting_ = false;
}

bool Scheduler::idle() const {
  std::lock_guard lock(mutex_);
  return waiting_.empty() && metrics_.running == 0;
}

void Scheduler::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::loop() {
  for (;;) {
    bool worked = false;
    try {
      worked = step();
    } catch (const std::exception& e) {
      log::error("scheduler: step failed: {}", e.what());
    }
    std::unique_lock lock(mutex_);
    if (stop_) break;
    // Idle: wait for a request (a cancelled waiting request is reaped within 50 ms).
    if (!worked) wake_.wait_for(lock, std::chrono::milliseconds(50));
  }
  // Whatever is left fails: the server is going away (and so may the pipeline: leave it alone).
  fail_all(std::make_exception_ptr(Error("the server is shutting down")), /*reset_caches=*/false);
}

SchedulerMetrics Scheduler::metrics() const {
  std::lock_guard lock(mutex_);
  return metrics_;
}

// --- admission --------------------------------------------------------------------------------

namespace {

std::size_t common_prefix(const std::vector<std::int32_t>& a, const std::vector<std::int32_t>& b) {
  std::size_t n = 0;
  const std::size_t limit = std::min(a.size(), b.size());
  while (n < limit && a[n] == b[n]) ++n;
  return n;
}

}  // namespace

// The free slot for a new prompt: the one holding the longest prefix of it, else (or without
// `reuse`) the least recently used. `keep`: positions of that slot to keep; `copy_from`: a busy
// slot with a longer prefix to copy first (-1: none).
int Scheduler::choose_slot(const std::vector<std::int32_t>& prompt, bool reuse, int& keep,
                           int& copy_from) const {
  // The last prompt token always runs: its logits are what the first sample needs.
  const std::size_t limit = prompt.size() - 1;
  int best = -1;
  std::size_t best_len = 0;
  int lru = -1;
  int donor = -1;
  std::size_t donor_len = 0;
  for (int i = 0; i < static_cast<int>(slots_.size()); ++i) {
    const Slot& s = slots_[i];
    const std::size_t len = std::min(common_prefix(s.tokens, prompt), limit);
    if (s.owner) {
      if (len > donor_len) donor = i, donor_len = len;
      continue;
    }
    if (best < 0 || len > best_len) best = i, best_len = len;
    if (lru < 0 || s.last_used < slots_[lru].last_used) lru = i;
  }
  if (best < 0) return -1;
  // No prefix anywhere (or none wanted): take the least recently used slot, sparing others'
  // reusable prefixes.
  if (!reuse) best_len = 0;
  const int chosen = best_len == 0 ? lru : best;
  keep = static_cast<int>(best_len == 0 ? 0 : best_len);
  copy_from = -1;
  if (reuse && donor >= 0 && donor_len >= best_len + static_cast<std::size_t>(options_.min_copy_tokens)) {
    copy_from = donor;
    keep = static_cast<int>(donor_len);
  }
  return chosen;
}

void Scheduler::admit(std::unique_lock<std::mutex>& lock) {
  // Requests whose client left while they waited go first, whether or not a slot is free.
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (!(*it)->ticket->cancelled()) {
      ++it;
      continue;
    }
    ++metrics_.cancelled;
    (*it)->result.stats.finish_reason = "cancelled";
    (*it)->ticket->finish(std::move((*it)->result));
    it = waiting_.erase(it);
  }
  while (!waiting_.empty() && static_cast<int>(running_.size()) < options_.max_running) {
    // (One cancelled since the sweep above is reaped at the end of this step.)
    std::unique_ptr<Sequence> s = std::move(waiting_.front());
    waiting_.pop_front();
    int keep = 0;
    int copy_from = -1;
    // A resumed request rebuilds its whole cache the way it was first computed (no reuse).
    const int slot =
        choose_slot(s->prompt, s->params.cache_prompt && !s->resumed, keep, copy_from);
    if (slot < 0) {
      waiting_.push_front(std::move(s));
      break;
    }
    lock.unlock();
    Slot& sl = slots_[slot];
    try {
      if (copy_from >= 0) {
        pipeline_->copy_prefix(copy_from, slot, keep);
        sl.tokens.assign(slots_[copy_from].tokens.begin(), slots_[copy_from].tokens.begin() + keep);
      } else {
        pipeline_->forget(slot, keep);
        sl.tokens.resize(static_cast<std::size_t>(keep));
      }
    } catch (const InvalidArgument&) {
      s->ticket->fail(std::current_exception());
      lock.lock();
      continue;
    } catch (...) {
      // The pipeline broke (a node lost): the request waits for the next one, or fails with it.
      sl.tokens.clear();
      lock.lock();
      waiting_.push_front(std::move(s));
      if (!recovery_) {
        waiting_.front()->ticket->fail(std::current_exception());
        waiting_.pop_front();
      }
      throw;
    }
    sl.owner = s.get();
    sl.last_used = ++tick_;
    s->slot = slot;
    s->prefilled = keep;
    if (keep > 0 && !s->resumed) s->prompt_chunks.push_back(keep);  // computed elsewhere
    if (s->resumed) {
      lock.lock();
      running_.push_back(std::move(s));
      continue;
    }
    s->admitted = now_();
    s->result.stats.prompt_tokens = static_cast<std::int32_t>(s->prompt.size());
    s->result.stats.cached_prompt_tokens = keep;
    s->result.stats.finish_reason = "length";
    for (std::int32_t id : s->prompt) s->sampler.accept(id);
    lock.lock();
    metrics_.cached_prompt_tokens += static_cast<std::uint64_t>(keep);
    if (s->max_tokens == 0) {
      Sequence& ref = *s;
      running_.push_back(std::move(s));
      finish(ref, "length");
      continue;
    }
    running_.push_back(std::move(s));
  }
  metrics_.waiting = static_cast<int>(waiting_.size());
  metrics_.running = static_cast<int>(running_.size());
}

// --- batches ----------------------------------------------------------------------------------

int Scheduler::prompt_chunk_limit(bool decoding) const {
  if (!decoding) return options_.batch_tokens;
  if (decode_step_s_ <= 0 || prompt_token_s_ <= 0) return options_.min_chunk;
  const double room = (options_.max_step_ratio - 1.0) * decode_step_s_;
  const int tokens = static_cast<int>(room / prompt_token_s_);
  return std::clamp(tokens, options_.min_chunk, options_.batch_tokens);
}

bool Scheduler::build_batch(Batch& batch, InFlight& flight) {
  batch = Batch{};
  flight = InFlight{};
  std::vector<Sequence*> decoders;
  std::vector<Sequence*> prompts;
  std::vector<Sequence*> replays;  // resumed sequences re-running what they had generated
  int decoding_total = 0;
  for (auto& s : running_) {
    if (s->done || s->ticket->cancelled()) continue;
    const bool prompt_left = s->prefilled < static_cast<int>(s->prompt.size());
    if (!prompt_left) ++decoding_total;
    // A decoder waits for its last token's logits. A prompt's next chunk continues right after
    // the chunk in flight, so a long prompt keeps every stage of a pipeline busy.
    if (s->next >= 0 && s->in_flight == 0) {
      decoders.push_back(s.get());
    } else if (prompt_left) {
      (s->replay_from >= 0 && s->prefilled >= s->replay_from ? replays : prompts)
          .push_back(s.get());
    }
  }
  // A batch is decode-shaped as a whole: replays go in batches of their own (with the decoders,
  // whose single tokens compute the same either way), prompt chunks wait for the next batch.
  if (!replays.empty()) {
    prompts = std::move(replays);
    batch.decode_shaped = true;
  }
  // With several batches in flight, the decoders are shared out between them, so that every
  // stage has work (all of them in one batch would leave the other stages idle).
  const int depth = std::max(pipeline_->max_in_flight(), 1);
  const int per_batch = (decoding_total + depth - 1) / depth;
  std::sort(decoders.begin(), decoders.end(), [](const Sequence* a, const Sequence* b) {
    return a->last_token_at < b->last_token_at;  // the longest waiting first
  });
  int budget = options_.batch_tokens;
  for (Sequence* s : decoders) {
    if (flight.decode_tokens >= std::max(per_batch, 1) || budget <= 0) break;
    const std::int32_t pos = static_cast<std::int32_t>(slots_[s->slot].tokens.size());
    batch.add(s->slot, pos, std::span(&s->next, 1), true);
    slots_[s->slot].tokens.push_back(s->next);
    flight.logits_of.push_back(s);
    flight.members.push_back(s);
    ++flight.decode_tokens;
    --budget;
  }
  std::sort(prompts.begin(), prompts.end(),
            [](const Sequence* a, const Sequence* b) { return a->order < b->order; });
  int chunk_room = std::min(budget, prompt_chunk_limit(decoding_total > 0));
  for (Sequence* s : prompts) {
    if (chunk_room <= 0) break;
    const int left = static_cast<int>(s->prompt.size()) - s->prefilled;
    int n = std::min(left, chunk_room);
    if (s->resumed && !batch.decode_shaped && s->next_chunk < s->prompt_chunks.size()) {
      // The prompt again in the chunks it first ran in; one that does not fit waits.
      const int chunk = s->prompt_chunks[s->next_chunk];
      if (chunk > chunk_room && !(flight.prompt_tokens == 0 && chunk <= budget)) continue;
      n = std::min(chunk, left);
      ++s->next_chunk;
    } else if (s->resumed && !batch.decode_shaped && s->replay_from >= 0) {
      n = std::min(n, s->replay_from - s->prefilled);  // the generated part goes decode-shaped
    } else if (!s->resumed) {
      s->prompt_chunks.push_back(n);
    }
    const bool last = n == left;
    const auto ids = std::span(s->prompt).subspan(static_cast<std::size_t>(s->prefilled), n);
    batch.add(s->slot, s->prefilled, ids, last);
    slots_[s->slot].tokens.insert(slots_[s->slot].tokens.end(), ids.begin(), ids.end());
    s->prefilled += n;
    if (last) flight.logits_of.push_back(s);
    flight.members.push_back(s);
    flight.prompt_tokens += n;
    chunk_room -= n;
  }
  for (Sequence* s : flight.members) {
    ++s->in_flight;
    slots_[s->slot].last_used = ++tick_;
  }
  flight.decode_shaped = batch.decode_shaped;
  return !batch.empty();
}

bool Scheduler::step() {
  // A pipeline is replaced with nothing in flight: a planned change waits for the batches in
  // flight to come back (no new ones are submitted meanwhile).
  if (recovery_ && in_flight_.empty() && (!pipeline_ || recovery_->wants_rebuild())) {
    replace_pipeline(nullptr);
  }
  if (!pipeline_) {
    reap();
    return false;
  }
  const bool draining = recovery_ && recovery_->wants_rebuild();
  try {
    if (!draining) {
      std::unique_lock lock(mutex_);
      admit(lock);
    }
    Batch batch;
    InFlight flight;
    while (!draining && pipeline_->in_flight() < std::max(pipeline_->max_in_flight(), 1) &&
           build_batch(batch, flight)) {
      flight.submitted = now_();
      pipeline_->submit(batch);
      {
        std::lock_guard lock(mutex_);
        ++metrics_.steps;
        metrics_.last_batch_tokens = static_cast<int>(batch.tokens.size());
        metrics_.last_batch_sequences = static_cast<int>(batch.runs.size());
        metrics_.batch_tokens_total += batch.tokens.size();
        metrics_.batch_size.add(static_cast<double>(batch.tokens.size()));
      }
      in_flight_.push_back(std::move(flight));
    }
    if (in_flight_.empty()) {
      reap();
      return draining;
    }
    pipeline_->collect(logits_);
    InFlight done = std::move(in_flight_.front());
    in_flight_.pop_front();
    const Clock::time_point now = now_();
    // With batches in flight, a batch's own time is from the later of its submission and the
    // previous collection.
    const Clock::time_point began = std::max(done.submitted, last_collect_);
    last_collect_ = now;
    if (!done.decode_shaped)
      learn_step_cost(done, std::chrono::duration<double>(now - began).count());
    process(done, logits_);
  } catch (...) {
    on_failure(std::current_exception());
  }
  reap();
  return true;
}

void Scheduler::on_failure(std::exception_ptr error) {
  bool recoverable = recovery_ != nullptr;
  std::string what = "unknown error";
  try {
    std::rethrow_exception(error);
  } catch (const InvalidArgument& e) {
    recoverable = false;  // the request's fault, not the pipeline's
    what = e.what();
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  if (!recoverable) {
    fail_all(error);
    return;
  }
  log::warn("scheduler: the pipeline failed ({}); rebuilding it, {} request(s) go on after it",
            what, running_.size());
  replace_pipeline(error);
}

void Scheduler::replace_pipeline(std::exception_ptr failure) {
  Pipeline* before = pipeline_;
  if (failure) {
    in_flight_.clear();
    if (pipeline_) pipeline_->drop_in_flight();
  }
  {
    std::lock_guard lock(mutex_);
    unavailable_.clear();
    metrics_.unavailable.clear();
  }
  Pipeline* next = nullptr;
  try {
    next = &recovery_->rebuild(failure);
  } catch (const std::exception& e) {
    // Nothing can serve: everything fails with the reason; new requests get it at once until
    // the recovery says a pipeline can be built again.
    pipeline_ = nullptr;
    const std::string why = e.what();
    log::error("scheduler: no pipeline can serve: {}", why);
    const auto error = std::make_exception_ptr(Unavailable(why));
    in_flight_.clear();
    for (auto& s : running_) s->ticket->fail(error);
    running_.clear();
    for (Slot& slot : slots_) slot = Slot{};
    std::lock_guard lock(mutex_);
    for (auto& s : waiting_) s->ticket->fail(error);
    waiting_.clear();
    unavailable_ = why;
    metrics_.unavailable = why;
    metrics_.running = 0;
    metrics_.waiting = 0;
    return;
  }
  pipeline_ = next;
  if (!failure && next == before) return;  // the same pipeline: the caches are as they were
  {
    std::lock_guard lock(mutex_);
    ++(failure ? metrics_.recoveries : metrics_.replans);
  }
  resume_all();
}

void Scheduler::resume_all() {
  const int n_seqs = pipeline_->n_seqs();
  options_.max_running = std::clamp(wanted_running_, 1, n_seqs);
  slots_.assign(static_cast<std::size_t>(n_seqs), Slot{});
  in_flight_.clear();
  std::sort(running_.begin(), running_.end(),
            [](const auto& a, const auto& b) { return a->order < b->order; });
  std::vector<std::unique_ptr<Sequence>> again;
  for (auto& s : running_) {
    s->in_flight = 0;
    s->slot = -1;
    if (!s->done && s->ticket->cancelled()) finish(*s, "cancelled");
    if (s->done) {
      s->ticket->finish(std::move(s->result));
      continue;
    }
    if (++s->resumes > kMaxResumes) {
      s->ticket->fail(std::make_exception_ptr(
          Error(fmt::format("the request lost its pipeline {} times; giving up", s->resumes))));
      continue;
    }
    // Its cache is rebuilt from the prompt and every token sampled so far: the last of them
    // (not yet run) gives the logits of the next sample, as its decode step would have.
    s->prompt.resize(static_cast<std::size_t>(s->result.stats.prompt_tokens));
    s->prompt.insert(s->prompt.end(), s->result.tokens.begin(), s->result.tokens.end());
    s->replay_from = s->result.tokens.empty() ? -1 : s->result.stats.prompt_tokens;
    s->next_chunk = 0;
    s->prefilled = 0;
    s->next = -1;
    s->resumed = true;
    again.push_back(std::move(s));
  }
  running_.clear();
  std::lock_guard lock(mutex_);
  metrics_.resumed += again.size();
  metrics_.max_running = options_.max_running;
  // Ahead of every waiting request, oldest first.
  for (auto it = again.rbegin(); it != again.rend(); ++it) waiting_.push_front(std::move(*it));
  metrics_.running = 0;
  metrics_.waiting = static_cast<int>(waiting_.size());
}

// A step costs a base (the weights streamed once, whatever the batch) plus a cost per prompt
// token (compute). Decode-only steps measure the base; steps with prompt tokens, once the base is
// known, the cost per token.
void Scheduler::learn_step_cost(const InFlight& flight, double seconds) {
  constexpr double kKeep = 0.8;  // exponential moving average: recent steps weigh most
  if (seconds <= 0) return;
  if (flight.prompt_tokens == 0) {
    decode_step_s_ = decode_step_s_ <= 0 ? seconds : kKeep * decode_step_s_ + (1 - kKeep) * seconds;
    return;
  }
  if (decode_step_s_ <= 0) return;
  const double per_token = std::max(seconds - decode_step_s_, 0.0) / flight.prompt_tokens;
  if (per_token <= 0) return;
  prompt_token_s_ =
      prompt_token_s_ <= 0 ? per_token : kKeep * prompt_token_s_ + (1 - kKeep) * per_token;
}

void Scheduler::process(InFlight& flight, const std::vector<float>& logits) {
  const std::size_t n_vocab = static_cast<std::size_t>(n_vocab_);
  if (logits.size() != flight.logits_of.size() * n_vocab) {
    fail("the pipeline returned {} logits for {} rows of {}", logits.size(),
         flight.logits_of.size(), n_vocab);
  }
  for (Sequence* s : flight.members) --s->in_flight;
  for (std::size_t r = 0; r < flight.logits_of.size(); ++r) {
    Sequence& s = *flight.logits_of[r];
    if (s.done) continue;
    sample(s, logits.data() + r * n_vocab);
  }
}

void Scheduler::sample(Sequence& s, const float* row) {
  GenerationStats& stats = s.result.stats;
  if (s.ticket->cancelled()) {
    finish(s, "cancelled");
    return;
  }
  const auto n_vocab = static_cast<std::size_t>(n_vocab_);
  std::span<const float> logits(row, n_vocab);
  if (s.constraint || !s.params.logit_bias.empty()) {
    s.masked.assign(row, row + n_vocab);
    for (const auto& [id, bias] : s.params.logit_bias) s.masked[static_cast<std::size_t>(id)] += bias;
    if (s.constraint) s.constraint->mask(s.masked, s.max_tokens - s.result.stats.generated_tokens);
    logits = s.masked;
  }
  const std::int32_t token = s.sampler.sample(logits);
  s.sampler.accept(token);
  if (s.constraint) s.constraint->accept(token);
  const Clock::time_point now = now_();
  {
    std::lock_guard lock(mutex_);
    ++metrics_.generated_tokens;
    metrics_.generated.add(now, 1);
    if (++stats.generated_tokens == 1) {
      s.first_token_at = now;
      stats.time_to_first_token_ms = std::chrono::duration<double, std::milli>(now - s.arrived).count();
      const double prefill_s = std::chrono::duration<double>(now - s.admitted).count();
      if (prefill_s > 0)
        stats.prefill_tokens_per_s = (stats.prompt_tokens - stats.cached_prompt_tokens) / prefill_s;
    } else {
      metrics_.itl.add(std::chrono::duration<double>(now - s.last_token_at).count());
    }
  }
  s.last_token_at = now;
  if (!s.params.ignore_eos && tokenizer_.is_end_of_generation(token)) {
    finish(s, "stop");
    return;
  }
  s.result.tokens.push_back(token);
  const std::vector<std::int32_t>& held = slots_[s.slot].tokens;
  const std::string piece = token_text(tokenizer_, token, held.empty() ? -1 : held.back());
  bool stopped = false;
  const std::string text = s.stream.push(piece, stopped);
  s.result.text += text;
  s.ticket->push(text);
  if (stopped || (s.constraint && s.constraint->complete())) {
    finish(s, "stop");
    return;
  }
  if (stats.generated_tokens >= s.max_tokens) {
    finish(s, "length");
    return;
  }
  s.next = token;
}

void Scheduler::finish(Sequence& s, const char* reason) {
  s.done = true;
  GenerationStats& stats = s.result.stats;
  stats.finish_reason = reason;
  if (stats.finish_reason == "cancelled") {
    s.result.text += s.stream.flush();  // a cancelled stream stays quiet
  } else {
    const std::string tail = s.stream.flush();
    s.result.text += tail;
    s.ticket->push(tail);
  }
  const double decode_s = std::chrono::duration<double>(s.last_token_at - s.first_token_at).count();
  if (stats.generated_tokens > 1 && decode_s > 0)
    stats.decode_tokens_per_s = (stats.generated_tokens - 1) / decode_s;
}

// Frees the slots of finished and cancelled sequences that have no batch in flight.
void Scheduler::reap() {
  std::vector<std::unique_ptr<Sequence>> keep;
  for (auto& s : running_) {
    if (!s->done && s->ticket->cancelled() && s->in_flight == 0) {
      finish(*s, "cancelled");
    }
    if (!s->done || s->in_flight > 0) {
      keep.push_back(std::move(s));
      continue;
    }
    Slot& slot = slots_[s->slot];
    slot.owner = nullptr;
    // slot.tokens stays what the cache holds (prompt and generated tokens that ran) for the
    // next request that starts the same way.
    const bool cancelled = s->result.stats.finish_reason == "cancelled";
    s->ticket->finish(std::move(s->result));
    std::lock_guard lock(mutex_);
    if (cancelled) ++metrics_.cancelled;
  }
  running_ = std::move(keep);
  std::lock_guard lock(mutex_);
  metrics_.running = static_cast<int>(running_.size());
  metrics_.waiting = static_cast<int>(waiting_.size());
}

void Scheduler::fail_all(std::exception_ptr error, bool reset_caches) {
  // The batches in flight are lost and every cache's content is unknown: forget them all.
  in_flight_.clear();
  if (!pipeline_) reset_caches = false;
  if (reset_caches) pipeline_->drop_in_flight();
  for (auto& s : running_) {
    s->ticket->fail(error);
  }
  running_.clear();
  for (Slot& slot : slots_) {
    slot.owner = nullptr;
    slot.tokens.clear();
  }
  try {
    for (int i = 0; reset_caches && i < static_cast<int>(slots_.size()); ++i) pipeline_->forget(i, 0);
  } catch (const std::exception& e) {
    log::warn("scheduler: could not reset the caches after a failure: {}", e.what());
  }
  std::lock_guard lock(mutex_);
  if (stop_) {
    for (auto& s : waiting_) s->ticket->fail(error);
    waiting_.clear();
  }
  metrics_.running = 0;
  metrics_.waiting = static_cast<int>(waiting_.size());
}

}  // namespace herd::engine
