// plan_tensor (placement.h): one tensor-parallel group of every member.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "cluster/placement/placement.h"
#include "util/error.h"

namespace herd::cluster {

Plan plan_tensor(const ModelShape& model, const std::vector<PlacementMember>& members,
                 const std::string& leader, const PlacementOptions& options) {
  if (model.layer_bytes.empty()) fail_argument("the model has no layers");
  auto lead = std::find_if(members.begin(), members.end(),
                           [&](const PlacementMember& m) { return m.id == leader; });
  if (lead == members.end()) fail_argument("the leader '{}' is not a member", leader);
  std::vector<const PlacementMember*> ranks = {&*lead};
  for (const auto& m : members) {
    if (m.id != leader) ranks.push_back(&m);
    if (!(m.bandwidth_bytes_per_s > 0)) fail_argument("member '{}' has no measured speed", m.id);
  }
  std::sort(ranks.begin() + 1, ranks.end(),
            [](const auto* a, const auto* b) { return a->id < b->id; });

  // Shares by bandwidth, snapped to quarters of the fastest: two nodes of one kind measure a few
  // percent apart, and an uneven split for noise would only make one of them wait.
  double fastest = 0;
  for (const auto* m : ranks) fastest = std::max(fastest, m->bandwidth_bytes_per_s);
  std::vector<double> weights;
  for (const auto* m : ranks) {
    weights.push_back(std::max(0.25, std::round(m->bandwidth_bytes_per_s / fastest * 4) / 4));
  }
  const double total_weight = std::accumulate(weights.begin(), weights.end(), 0.0);

  const std::uint64_t layers =
      std::accumulate(model.layer_bytes.begin(), model.layer_bytes.end(), std::uint64_t{0});
  const std::uint64_t kv_all = model.kv_bytes_per_token_per_layer * model.layer_bytes.size() *
                               static_cast<std::uint64_t>(std::max<std::int64_t>(model.n_ctx, 0));
  const int n_layer = static_cast<int>(model.layer_bytes.size());
  Plan plan;
  plan.mode = "tensor";
  double slowest = 0, latency = 0;
  for (std::size_t r = 0; r < ranks.size(); ++r) {
    const PlacementMember& m = *ranks[r];
    Stage s;
    s.node_id = m.id;
    s.first_layer = 0;
    s.last_layer = n_layer;
    s.group = 0;
    s.share = weights[r] / total_weight;
    s.weight_bytes = static_cast<std::uint64_t>(static_cast<double>(layers) * s.share);
    if (r == 0) s.weight_bytes += model.embedding_bytes + model.head_bytes;
    s.kv_bytes = static_cast<std::uint64_t>(static_cast<double>(kv_all) * s.share);
    s.total_bytes = s.weight_bytes + s.kv_bytes + options.per_node_overhead_bytes;
    s.usable_bytes = m.usable_memory_bytes;
    s.seconds_per_token = static_cast<double>(s.weight_bytes) / m.bandwidth_bytes_per_s;
    s.reason = fmt::format("rank {}: {:.0f}% of every layer{}", r, 100 * s.share,
                           r == 0 ? " + embedding and head (leader)" : "");
    if (s.total_bytes > s.usable_bytes) {
      fail("tensor parallelism needs {} on node '{}' ({:.0f}% of every layer and its KV cache) "
           "but it offers {}: give it more memory (--memory-limit) or use --parallel-mode "
           "pipeline",
           format_bytes(s.total_bytes), m.id, 100 * s.share, format_bytes(s.usable_bytes));
    }
    slowest = std::max(slowest, s.seconds_per_token);
    latency = std::max(latency, m.link.latency_s);
    plan.stages.push_back(s);
  }
  // Two all-reduces per layer, each two hops through the leader.
  plan.seconds_per_token = slowest + 4.0 * n_layer * latency;
  plan.bottleneck_seconds = plan.seconds_per_token;
  plan.summary = fmt::format(
      "tensor parallel: {} nodes run every layer together, each its share of the heads and the "
      "feed-forward; est. {:.1f} ms/token",
      ranks.size(), plan.seconds_per_token * 1e3);
  return plan;
}

}  // namespace herd::cluster
