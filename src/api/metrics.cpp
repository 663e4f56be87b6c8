#include "api/metrics.h"

#include <fmt/format.h>

namespace herd::api {

void Metrics::record_request(const std::string& endpoint, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{endpoint, status}];
}

void Metrics::record_generation(const engine::GenerationStats& stats) {
  std::lock_guard lock(mutex_);
  ++generations_;
  prompt_tokens_ += static_cast<std::uint64_t>(std::max(0, stats.prompt_tokens));
  cached_prompt_tokens_ += static_cast<std::uint64_t>(std::max(0, stats.cached_prompt_tokens));
  generated_tokens_ += static_cast<std::uint64_t>(std::max(0, stats.generated_tokens));
  if (stats.generated_tokens > 0) {
    const double s = stats.time_to_first_token_ms / 1000.0;
    ++ttft_count_;
    ttft_sum_s_ += s;
    for (std::size_t i = 0; i < kTtftBuckets.size(); ++i) {
      if (s <= kTtftBuckets[i]) ++ttft_buckets_[i];
    }
  }
  if (stats.generated_tokens > 1) last_decode_tps_ = stats.decode_tokens_per_s;
  if (stats.prompt_tokens > stats.cached_prompt_tokens)
    last_prefill_tps_ = stats.prefill_tokens_per_s;
}

double Metrics::last_decode_tokens_per_s() const {
  std::lock_guard lock(mutex_);
  return last_decode_tps_;
}

namespace {

void histogram_lines(std::string& out, const char* name, const Histogram& h) {
  for (std::size_t i = 0; i < h.bounds().size(); ++i)
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, h.bounds()[i], h.cumulative()[i]);
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, h.count());
  out += fmt::format("{}_sum {}\n", name, h.sum());
  out += fmt::format("{}_count {}\n", name, h.count());
}

}  // namespace

std::string Metrics::render(const std::vector<StageTiming>& stages,
                            const std::optional<engine::SchedulerMetrics>& scheduler) const {
  std::lock_guard lock(mutex_);
  std::string out;
  auto header = [&](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  header("herd_requests_total", "counter", "HTTP API requests by endpoint and status code.");
  for (const auto& [key, n] : requests_)
    out += fmt::format("herd_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first,
                       key.second, n);
  header("herd_time_to_first_token_seconds", "histogram",
         "From the start of a generation to its first sampled token.");
  for (std::size_t i = 0; i < kTtftBuckets.size(); ++i)
    out += fmt::format("herd_time_to_first_token_seconds_bucket{{le=\"{}\"}} {}\n", kTtftBuckets[i],
                       ttft_buckets_[i]);
  out += fmt::format("herd_time_to_first_token_seconds_bucket{{le=\"+Inf\"}} {}\n", ttft_count_);
  out += fmt::format("herd_time_to_first_token_seconds_sum {}\n", ttft_sum_s_);
  out += fmt::format("herd_time_to_first_token_seconds_count {}\n", ttft_count_);
  header("herd_prompt_tokens_total", "counter", "Prompt tokens received (cached ones included).");
  out += fmt::format("herd_prompt_tokens_total {}\n", prompt_tokens_);
  header("herd_cached_prompt_tokens_total", "counter", "Prompt tokens reused from the KV cache.");
  out += fmt::format("herd_cached_prompt_tokens_total {}\n", cached_prompt_tokens_);
  header("herd_generated_tokens_total", "counter", "Tokens sampled.");
  out += fmt::format("herd_generated_tokens_total {}\n", generated_tokens_);
  header("herd_generations_total", "counter", "Finished generations.");
  out += fmt::format("herd_generations_total {}\n", generations_);
  header("herd_decode_tokens_per_second", "gauge", "Decode rate of the last generation.");
  out += fmt::format("herd_decode_tokens_per_second {}\n", last_decode_tps_);
  header("herd_prefill_tokens_per_second", "gauge", "Prefill rate of the last generation.");
  out += fmt::format("herd_prefill_tokens_per_second {}\n", last_prefill_tps_);
  if (scheduler) {
    const engine::SchedulerMetrics& m = *scheduler;
    header("herd_queue_length", "gauge", "Requests waiting for a free sequence slot.");
    out += fmt::format("herd_queue_length {}\n", m.waiting);
    header("herd_running_sequences", "gauge", "Requests generating now (each holds a KV slot).");
    out += fmt::format("herd_running_sequences {}\n", m.running);
    header("herd_max_running_sequences", "gauge", "Slots: requests that may generate at once.");
    out += fmt::format("herd_max_running_sequences {}\n", m.max_running);
    header("herd_batch_tokens", "gauge", "Tokens in the last batch (decode tokens + prompt chunks).");
    out += fmt::format("herd_batch_tokens {}\n", m.last_batch_tokens);
    header("herd_batch_sequences", "gauge", "Sequences in the last batch.");
    out += fmt::format("herd_batch_sequences {}\n", m.last_batch_sequences);
    header("herd_batches_total", "counter", "Batches run by the scheduler.");
    out += fmt::format("herd_batches_total {}\n", m.steps);
    header("herd_batch_size_tokens", "histogram", "Tokens per batch.");
    histogram_lines(out, "herd_batch_size_tokens", m.batch_size);
    header("herd_inter_token_latency_seconds", "histogram",
           "Time between two tokens of one request, as its client sees it.");
    histogram_lines(out, "herd_inter_token_latency_seconds", m.itl);
    header("herd_scheduler_time_to_first_token_seconds", "histogram",
           "From arrival (queueing included) to the first sampled token.");
    histogram_lines(out, "herd_scheduler_time_to_first_token_seconds", m.ttft);
    header("herd_requests_rejected_total", "counter", "Requests refused with 429: queue full.");
    out += fmt::format("herd_requests_rejected_total {}\n", m.rejected);
    header("herd_requests_cancelled_total", "counter", "Requests whose client went away.");
    out += fmt::format("herd_requests_cancelled_total {}\n", m.cancelled);
  }
  if (!stages.empty()) {
    header("herd_stage_seconds_per_token", "gauge",
           "Placement's estimate of each node's time per token (its layers over its bandwidth).");
    for (const auto& s : stages)
      out += fmt::format("herd_stage_seconds_per_token{{node=\"{}\",layers=\"{}-{}\"}} {}\n",
                         s.node_id, s.first_layer, s.last_layer - 1, s.estimated_seconds_per_token);
  }
  return out;
}

}  // namespace herd::api
