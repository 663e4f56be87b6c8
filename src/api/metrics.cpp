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
  if (stats.generated_tokens > 0) ttft_.add(stats.time_to_first_token_ms / 1000.0);
  if (stats.generated_tokens > 1) last_decode_tps_ = stats.decode_tokens_per_s;
  if (stats.prompt_tokens > stats.cached_prompt_tokens)
    last_prefill_tps_ = stats.prefill_tokens_per_s;
}

double Metrics::last_decode_tokens_per_s() const {
  std::lock_guard lock(mutex_);
  return last_decode_tps_;
}

double Metrics::ttft_quantile_s(double q) const {
  std::lock_guard lock(mutex_);
  return ttft_.quantile_bound(q);
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
                            const std::optional<engine::SchedulerMetrics>& scheduler,
                            const PowerReading& power) const {
  std::lock_guard lock(mutex_);
  std::string out;
  auto header = [&](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  // A metric with one unlabelled value.
  auto single = [&](const char* name, const char* type, const char* help, auto value) {
    header(name, type, help);
    out += fmt::format("{} {}\n", name, value);
  };
  header("herd_requests_total", "counter", "HTTP API requests by endpoint and status code.");
  for (const auto& [key, n] : requests_)
    out += fmt::format("herd_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first,
                       key.second, n);
  header("herd_time_to_first_token_seconds", "histogram",
         "From a request's arrival (queueing included) to its first sampled token.");
  histogram_lines(out, "herd_time_to_first_token_seconds", ttft_);
  single("herd_prompt_tokens_total", "counter", "Prompt tokens received (cached ones included).",
         prompt_tokens_);
  single("herd_cached_prompt_tokens_total", "counter", "Prompt tokens reused from the KV cache.",
         cached_prompt_tokens_);
  single("herd_generated_tokens_total", "counter", "Tokens sampled.", generated_tokens_);
  single("herd_generations_total", "counter", "Finished generations.", generations_);
  single("herd_decode_tokens_per_second", "gauge", "Decode rate of the last generation.",
         last_decode_tps_);
  single("herd_prefill_tokens_per_second", "gauge", "Prefill rate of the last generation.",
         last_prefill_tps_);
  if (scheduler) {
    const engine::SchedulerMetrics& m = *scheduler;
    single("herd_queue_length", "gauge", "Requests waiting for a free sequence slot.", m.waiting);
    single("herd_running_sequences", "gauge", "Requests generating now (each holds a KV slot).",
           m.running);
    single("herd_max_running_sequences", "gauge", "Slots: requests that may generate at once.",
           m.max_running);
    single("herd_batch_tokens", "gauge", "Tokens in the last batch (decode tokens + prompt chunks).",
           m.last_batch_tokens);
    single("herd_batch_sequences", "gauge", "Sequences in the last batch.", m.last_batch_sequences);
    single("herd_batches_total", "counter", "Batches run by the scheduler.", m.steps);
    header("herd_batch_size_tokens", "histogram", "Tokens per batch.");
    histogram_lines(out, "herd_batch_size_tokens", m.batch_size);
    header("herd_inter_token_latency_seconds", "histogram",
           "Time between two tokens of one request, as its client sees it.");
    histogram_lines(out, "herd_inter_token_latency_seconds", m.itl);
    single("herd_requests_rejected_total", "counter", "Requests refused with 429: queue full.",
           m.rejected);
    single("herd_requests_cancelled_total", "counter", "Requests whose client went away.",
           m.cancelled);
    single("herd_pipeline_recoveries_total", "counter",
           "Pipelines rebuilt after a node was lost (its requests resumed).", m.recoveries);
    single("herd_pipeline_replans_total", "counter",
           "Pipelines changed at a quiet moment after a node joined.", m.replans);
    single("herd_sequences_resumed_total", "counter",
           "Requests whose cache was rebuilt to go on after a pipeline change.", m.resumed);
    single("herd_generated_tokens_per_second", "gauge",
           "Tokens sampled per second over the last 3 s, all requests together.",
           power.tokens_per_s);
  }
  if (power.watts) {
    single("herd_power_watts", "gauge", "CPU package power of all nodes (RAPL).", *power.watts);
    if (power.tokens_per_s > 0)
      single("herd_energy_joules_per_token", "gauge",
             "Energy per generated token now: power over the generation rate.",
             *power.watts / power.tokens_per_s);
  } else {
    out += "# herd_power_watts: not available (no readable RAPL counters on every node)\n";
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
