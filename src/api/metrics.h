// Counters for GET /metrics in the Prometheus text exposition format (version 0.0.4). Thread-safe;
// rendering is a pure function of the recorded values.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/generator.h"
#include "engine/scheduler.h"
#include "util/histogram.h"

namespace herd::api {

// Per pipeline stage, for clustered serving (from the placement estimate).
struct StageTiming {
  std::string node_id;
  int first_layer = 0;
  int last_layer = 0;
  double estimated_seconds_per_token = 0;
};

// The cluster's power now (the sum over its nodes), where every node can read it.
struct PowerReading {
  std::optional<double> watts;  // nullopt: not available
  double tokens_per_s = 0;      // generated now, for joules per token
};

class Metrics {
 public:
  void record_request(const std::string& endpoint, int status);
  void record_generation(const engine::GenerationStats& stats);

  // Last decode rate (tokens/s) and the number of finished generations, for the dashboard.
  double last_decode_tokens_per_s() const;
  // The q-quantile of the time to first token, seconds, as a histogram bucket bound.
  double ttft_quantile_s(double q) const;

  // The exposition text. `stages` adds per-node gauges (empty for one node); `scheduler` the
  // queue, batches and inter-token latency.
  // `power` adds watts and joules per generated token where they are available.
  std::string render(const std::vector<StageTiming>& stages = {},
                     const std::optional<engine::SchedulerMetrics>& scheduler = {},
                     const PowerReading& power = {}) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;  // (endpoint, status) -> count
  // From a request's arrival (queueing included) to its first sampled token, seconds.
  Histogram ttft_{{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0}};
  std::uint64_t prompt_tokens_ = 0;
  std::uint64_t cached_prompt_tokens_ = 0;
  std::uint64_t generated_tokens_ = 0;
  std::uint64_t generations_ = 0;
  double last_decode_tps_ = 0;
  double last_prefill_tps_ = 0;
};

}  // namespace herd::api
