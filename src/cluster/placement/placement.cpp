#include "cluster/placement/placement.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

#include "util/error.h"

namespace herd::cluster {

std::string format_bytes(std::uint64_t bytes) {
  constexpr double kMiB = 1024.0 * 1024.0, kGiB = kMiB * 1024.0;
  if (bytes >= (std::uint64_t{1} << 30))
    return fmt::format("{:.1f} GiB", static_cast<double>(bytes) / kGiB);
  return fmt::format("{:.0f} MiB", static_cast<double>(bytes) / kMiB);
}

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Prefix sums over layers so every stage's bytes are O(1).
struct Layers {
  int n = 0;
  std::vector<std::uint64_t> weight_prefix;  // [n + 1]
  std::vector<std::uint64_t> memory_prefix;  // weights + KV, [n + 1]
  std::uint64_t kv_per_layer = 0;
  std::uint64_t embedding = 0, head = 0;

  std::uint64_t memory(int a, int b) const {
    return memory_prefix[b] - memory_prefix[a] + (a == 0 ? embedding : 0) + (b == n ? head : 0);
  }
  // Bytes read per decoded token: every weight of the stage's layers, and the output projection.
  // The embedding costs one row and the KV cache grows with the context; both are left out.
  std::uint64_t streamed(int a, int b) const {
    return weight_prefix[b] - weight_prefix[a] + (b == n ? head : 0);
  }
  std::uint64_t weights(int a, int b) const {
    return weight_prefix[b] - weight_prefix[a] + (a == 0 ? embedding : 0) + (b == n ? head : 0);
  }
};

struct Node {
  const PlacementMember* member;
  std::uint64_t capacity;  // usable minus the per-node overhead
};

double stage_time(const Layers& layers, const Node& node, int a, int b) {
  return static_cast<double>(layers.streamed(a, b)) / node.member->bandwidth_bytes_per_s;
}

double hop_time(const ModelShape& model, const Node& from, const Node& to) {
  double t = std::max(from.member->link.latency_s, to.member->link.latency_s);
  double bw =
      std::min(from.member->link.bandwidth_bytes_per_s, to.member->link.bandwidth_bytes_per_s);
  if (bw > 0) t += static_cast<double>(model.activation_bytes) / bw;
  return t;
}

// Boundaries b[0]=0 < ... < b[k]=n for the stages that got layers, and the nodes that run them.
struct Split {
  std::vector<int> nodes;  // indexes into the Node list, pipeline order
  std::vector<int> bounds;
  double token_seconds = kInf;
  double bottleneck = kInf;
};

// Greedy: each node in turn takes as many layers as fit in its memory and in `limit` seconds per
// token. For a fixed order this reaches the end iff any contiguous split does (taking more never
// hurts the next node), so it decides feasibility for the bisection below. Nodes may end up empty.
bool greedy(const Layers& layers, const std::vector<Node>& nodes, const std::vector<int>& order,
            double limit, Split* out) {
  int a = 0;
  if (out) *out = Split{};
  if (out) out->bounds.push_back(0);
  for (int idx : order) {
    int b = a;
    while (b < layers.n && layers.memory(a, b + 1) <= nodes[idx].capacity &&
           stage_time(layers, nodes[idx], a, b + 1) <= limit)
      ++b;
    if (b > a && out) {
      out->nodes.push_back(idx);
      out->bounds.push_back(b);
    }
    a = b;
    if (a == layers.n) return true;
  }
  return false;
}

void score(const ModelShape& model, const Layers& layers, const std::vector<Node>& nodes,
           Split& split) {
  split.token_seconds = 0;
  split.bottleneck = 0;
  for (std::size_t s = 0; s < split.nodes.size(); ++s) {
    double t = stage_time(layers, nodes[split.nodes[s]], split.bounds[s], split.bounds[s + 1]);
    split.token_seconds += t;
    split.bottleneck = std::max(split.bottleneck, t);
  }
  // With more than one stage the sampled token also travels back to the first stage: a ring.
  std::size_t k = split.nodes.size();
  for (std::size_t s = 0; k > 1 && s < k; ++s)
    split.token_seconds += hop_time(model, nodes[split.nodes[s]], nodes[split.nodes[(s + 1) % k]]);
}

// The smallest per-stage time for this order (bisection on the greedy test), as a split.
bool best_split_for_order(const ModelShape& model, const Layers& layers,
                          const std::vector<Node>& nodes, const std::vector<int>& order,
                          Split& out) {
  if (!greedy(layers, nodes, order, kInf, nullptr)) return false;
  double lo = 0, hi = 0;
  for (int idx : order) hi = std::max(hi, stage_time(layers, nodes[idx], 0, layers.n));
  for (int iter = 0; iter < 64 && hi - lo > hi * 1e-9; ++iter) {
    double mid = 0.5 * (lo + hi);
    (greedy(layers, nodes, order, mid, nullptr) ? hi : lo) = mid;
  }
  HERD_CHECK(greedy(layers, nodes, order, hi, &out));
  score(model, layers, nodes, out);
  return true;
}

// Greedy packs the early stages up to the limit; this redistributes within the same nodes and
// the same slowest-stage time so the single-stream time is least and, among equal ones, the
// stages are as even as possible (dynamic programming over the boundaries).
Split refine(const ModelShape& model, const Layers& layers, const std::vector<Node>& nodes,
             const Split& split) {
  const int k = static_cast<int>(split.nodes.size()), n = layers.n;
  const double limit = split.bottleneck * (1 + 1e-9);
  struct Cell {
    double sum = kInf, squares = kInf;
    int from = -1;
  };
  std::vector<std::vector<Cell>> dp(k + 1, std::vector<Cell>(n + 1));
  dp[0][0] = {0, 0, -1};
  auto better = [](double s1, double q1, const Cell& c) {
    if (s1 < c.sum * (1 - 1e-12)) return true;
    return s1 <= c.sum * (1 + 1e-12) && q1 < c.squares;
  };
  for (int j = 0; j < k; ++j) {
    const Node& node = nodes[split.nodes[j]];
    for (int a = j; a < n; ++a) {
      if (dp[j][a].sum == kInf) continue;
      for (int b = a + 1; b <= n - (k - 1 - j); ++b) {
        if (layers.memory(a, b) > node.capacity) break;
        double t = stage_time(layers, node, a, b);
        if (t > limit) break;
        double s = dp[j][a].sum + t, q = dp[j][a].squares + t * t;
        if (better(s, q, dp[j + 1][b])) dp[j + 1][b] = {s, q, a};
      }
    }
  }
  HERD_CHECK(dp[k][n].sum < kInf);
  Split out;
  out.nodes = split.nodes;
  out.bounds.assign(k + 1, 0);
  for (int j = k, b = n; j > 0; --j) {
    out.bounds[j] = b;
    b = dp[j][b].from;
  }
  score(model, layers, nodes, out);
  return out;
}

void validate(const ModelShape& model, const std::vector<PlacementMember>& members) {
  if (model.layer_bytes.empty()) fail_argument("placement: the model has no layers");
  if (model.n_ctx <= 0)
    fail_argument("placement: context length must be positive, got {}", model.n_ctx);
  if (members.empty())
    fail_argument("placement: no cluster members (is this node's own entry missing?)");
  std::set<std::string> ids;
  for (const auto& m : members) {
    if (!ids.insert(m.id).second) fail_argument("placement: member id \"{}\" appears twice", m.id);
    if (!(m.bandwidth_bytes_per_s > 0) || !std::isfinite(m.bandwidth_bytes_per_s))
      fail_argument("placement: member \"{}\" has no measured speed: profile it before planning",
                    m.id);
  }
}

// Orders to try: every subset (each in every order when it has at most 4 members, else sorted by
// speed) for small clusters; prefixes of the speed and memory rankings for large ones.
std::vector<std::vector<int>> candidate_orders(const std::vector<Node>& nodes,
                                               int exhaustive_limit) {
  const int n = static_cast<int>(nodes.size());
  auto by_speed = [&](int x, int y) {
    const auto &a = *nodes[x].member, &b = *nodes[y].member;
    if (a.bandwidth_bytes_per_s != b.bandwidth_bytes_per_s)
      return a.bandwidth_bytes_per_s > b.bandwidth_bytes_per_s;
    return a.id < b.id;
  };
  std::vector<std::vector<int>> orders;
  if (n <= std::min(exhaustive_limit, 16)) {
    for (std::uint32_t mask = 1; mask < (1u << n); ++mask) {
      std::vector<int> subset;
      for (int i = 0; i < n; ++i)
        if (mask & (1u << i)) subset.push_back(i);
      if (subset.size() <= 4) {
        do orders.push_back(subset);
        while (std::next_permutation(subset.begin(), subset.end()));
      } else {
        std::sort(subset.begin(), subset.end(), by_speed);
        orders.push_back(subset);
      }
    }
    return orders;
  }
  std::vector<int> all(n);
  std::iota(all.begin(), all.end(), 0);
  auto ranking = all;
  std::sort(ranking.begin(), ranking.end(), by_speed);
  for (int k = 1; k <= n; ++k) orders.emplace_back(ranking.begin(), ranking.begin() + k);
  std::sort(ranking.begin(), ranking.end(), [&](int x, int y) {
    if (nodes[x].capacity != nodes[y].capacity) return nodes[x].capacity > nodes[y].capacity;
    return by_speed(x, y);
  });
  for (int k = 1; k <= n; ++k) orders.emplace_back(ranking.begin(), ranking.begin() + k);
  return orders;
}

std::string ids_of(const std::vector<Node>& nodes, const Split& s) {
  std::string out;
  for (int i : s.nodes) out += nodes[i].member->id + ",";
  return out;
}

// Among splits within the tolerance of the fastest: fewest stages, then the least bottleneck,
// then the fastest, then by ids so the result does not depend on the order of `members`.
bool preferred(const Split& a, const Split& b, double fastest, double tolerance,
               const std::vector<Node>& nodes) {
  bool a_ok = a.token_seconds <= fastest * (1 + tolerance),
       b_ok = b.token_seconds <= fastest * (1 + tolerance);
  if (a_ok != b_ok) return a_ok;
  if (a.nodes.size() != b.nodes.size()) return a.nodes.size() < b.nodes.size();
  if (a.bottleneck != b.bottleneck) return a.bottleneck < b.bottleneck;
  if (a.token_seconds != b.token_seconds) return a.token_seconds < b.token_seconds;
  return ids_of(nodes, a) < ids_of(nodes, b);
}

[[noreturn]] void fail_too_small(const ModelShape& model, const Layers& layers,
                                 const std::vector<Node>& nodes, const PlacementOptions& options) {
  std::uint64_t weights = layers.weights(0, layers.n);
  std::uint64_t kv = layers.kv_per_layer * static_cast<std::uint64_t>(layers.n);
  std::uint64_t need = weights + kv, have = 0, largest = 0;
  for (const auto& node : nodes) {
    have += node.capacity;
    largest = std::max(largest, node.capacity);
  }
  std::string overhead = format_bytes(options.per_node_overhead_bytes);
  if (need > have)
    fail(
        "model needs {} (weights {} + KV cache {} for {} tokens), cluster has {} usable across {} "
        "node(s) "
        "after {} per-node overhead: add a node, use a smaller quantization or a shorter context",
        format_bytes(need), format_bytes(weights), format_bytes(kv), model.n_ctx,
        format_bytes(have), nodes.size(), overhead);
  for (int i = 0; i < layers.n; ++i) {
    std::uint64_t one = layers.memory(i, i + 1);
    if (one > largest)
      fail(
          "layer {} needs {} (with its KV cache{}) but the largest node has {} usable after {} "
          "overhead: "
          "layers cannot be split across nodes — add a bigger node, use a smaller quantization or "
          "a shorter "
          "context",
          i, format_bytes(one),
          i == 0 ? " and the embedding" : (i == layers.n - 1 ? " and the output head" : ""),
          format_bytes(largest), overhead);
  }
  fail(
      "model needs {} and the cluster has {} usable, but no split of its {} layers into whole "
      "layers fits the "
      "nodes' memory: add a node or use a smaller quantization",
      format_bytes(need), format_bytes(have), layers.n);
}

std::string stage_reason(const Layers& layers, const Stage& s, double bottleneck, bool first,
                         bool last) {
  std::vector<std::string> parts;
  if (first) parts.push_back("embedding");
  if (last) parts.push_back("output head");
  double fill = static_cast<double>(s.total_bytes) /
                static_cast<double>(std::max<std::uint64_t>(s.usable_bytes, 1));
  if (first && last)
    parts.push_back("one node holds the whole model: no network hop per token");
  else if (fill >= 0.9)
    parts.push_back(fmt::format("memory-bound ({:.0f}% of its memory)", fill * 100));
  else if (s.seconds_per_token >= bottleneck * (1 - 1e-6))
    parts.push_back("sets the pace (slowest stage)");
  else
    parts.push_back("share sized to its speed");
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

}  // namespace

Plan plan(const ModelShape& model, const std::vector<PlacementMember>& members,
          const PlacementOptions& options) {
  validate(model, members);
  Layers layers;
  layers.n = static_cast<int>(model.layer_bytes.size());
  layers.kv_per_layer =
      model.kv_bytes_per_token_per_layer * static_cast<std::uint64_t>(model.n_ctx);
  layers.embedding = model.embedding_bytes;
  layers.head = model.head_bytes;
  layers.weight_prefix.assign(layers.n + 1, 0);
  layers.memory_prefix.assign(layers.n + 1, 0);
  for (int i = 0; i < layers.n; ++i) {
    layers.weight_prefix[i + 1] = layers.weight_prefix[i] + model.layer_bytes[i];
    layers.memory_prefix[i + 1] =
        layers.memory_prefix[i] + model.layer_bytes[i] + layers.kv_per_layer;
  }

  Plan result;
  std::vector<Node> nodes;
  for (const auto& m : members) {
    if (m.usable_memory_bytes <= options.per_node_overhead_bytes)
      result.unused.push_back(fmt::format("{}: {} usable is not above the {} per-node overhead",
                                          m.id, format_bytes(m.usable_memory_bytes),
                                          format_bytes(options.per_node_overhead_bytes)));
    else
      nodes.push_back({&m, m.usable_memory_bytes - options.per_node_overhead_bytes});
  }
  if (nodes.empty()) fail_too_small(model, layers, nodes, options);

  std::vector<Split> splits;
  for (const auto& order : candidate_orders(nodes, options.exhaustive_member_limit)) {
    Split s;
    if (best_split_for_order(model, layers, nodes, order, s)) splits.push_back(std::move(s));
  }
  if (splits.empty()) fail_too_small(model, layers, nodes, options);

  double fastest = kInf;
  for (const auto& s : splits) fastest = std::min(fastest, s.token_seconds);
  const Split* chosen = &splits[0];
  for (const auto& s : splits)
    if (preferred(s, *chosen, fastest, options.equal_speed_tolerance, nodes)) chosen = &s;
  Split best = refine(model, layers, nodes, *chosen);

  result.seconds_per_token = best.token_seconds;
  result.bottleneck_seconds = best.bottleneck;
  const int k = static_cast<int>(best.nodes.size());
  for (int j = 0; j < k; ++j) {
    const Node& node = nodes[best.nodes[j]];
    Stage st;
    st.node_id = node.member->id;
    st.first_layer = best.bounds[j];
    st.last_layer = best.bounds[j + 1];
    st.weight_bytes = layers.weights(st.first_layer, st.last_layer);
    st.kv_bytes = layers.kv_per_layer * static_cast<std::uint64_t>(st.last_layer - st.first_layer);
    st.total_bytes = st.weight_bytes + st.kv_bytes + options.per_node_overhead_bytes;
    st.usable_bytes = node.member->usable_memory_bytes;
    st.seconds_per_token = stage_time(layers, node, st.first_layer, st.last_layer);
    st.reason = stage_reason(layers, st, best.bottleneck, j == 0, j == k - 1);
    result.stages.push_back(std::move(st));
  }

  // Why each other member is left out: the best plan that used it, if any, was slower or had
  // more hops for the same speed.
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (std::find(best.nodes.begin(), best.nodes.end(), static_cast<int>(i)) != best.nodes.end())
      continue;
    double with = kInf;
    for (const auto& s : splits)
      if (std::find(s.nodes.begin(), s.nodes.end(), static_cast<int>(i)) != s.nodes.end())
        with = std::min(with, s.token_seconds);
    const auto& id = nodes[i].member->id;
    if (with == kInf)
      result.unused.push_back(
          fmt::format("{}: no split that includes it fits the others' memory", id));
    else if (with > best.token_seconds * (1 + options.equal_speed_tolerance))
      result.unused.push_back(
          fmt::format("{}: not needed; the best plan with it is slower ({:.1f} vs {:.1f} ms/token)",
                      id, with * 1e3, best.token_seconds * 1e3));
    else
      result.unused.push_back(
          fmt::format("{}: not needed; the model fits in fewer nodes at the same speed "
                      "(one hop fewer per token)",
                      id));
  }
  std::sort(result.unused.begin(), result.unused.end());
  result.summary = fmt::format(
      "{} stage(s) on {} of {} node(s); est. {:.1f} ms/token for one stream "
      "({:.1f} tok/s), slowest stage {:.1f} ms",
      k, k, members.size(), result.seconds_per_token * 1e3, 1.0 / result.seconds_per_token,
      result.bottleneck_seconds * 1e3);
  return result;
}

std::string Plan::explain() const {
  std::string out = summary + "\n";
  out += fmt::format("{:<5} {:<16} {:<11} {:>10} {:>10} {:>21} {:>8}  {}\n", "stage", "node",
                     "layers", "weights", "KV cache", "needs / has", "ms/tok", "why");
  for (std::size_t j = 0; j < stages.size(); ++j) {
    const auto& s = stages[j];
    out += fmt::format(
        "{:<5} {:<16} {:<11} {:>10} {:>10} {:>21} {:>8.2f}  {}\n",
        mode == "tensor" ? fmt::format("g{}", s.group) : std::to_string(j), s.node_id,
        fmt::format("{}-{} ({})", s.first_layer, s.last_layer - 1, s.last_layer - s.first_layer),
        format_bytes(s.weight_bytes), format_bytes(s.kv_bytes),
        format_bytes(s.total_bytes) + " / " + format_bytes(s.usable_bytes),
        s.seconds_per_token * 1e3, s.reason);
  }
  for (const auto& u : unused) out += "not used: " + u + "\n";
  return out;
}

int default_parallel(std::uint64_t weight_bytes, std::uint64_t kv_bytes_per_seq,
                     std::uint64_t usable_bytes) {
  if (kv_bytes_per_seq == 0 || usable_bytes <= weight_bytes) return 1;
  const std::uint64_t slots = (usable_bytes - weight_bytes) / 2 / kv_bytes_per_seq;
  return static_cast<int>(std::clamp<std::uint64_t>(slots, 1, kMaxDefaultParallel));
}

}  // namespace herd::cluster
