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

std::string Metrics::render(const std::vector<StageTiming>& stages) const {
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
