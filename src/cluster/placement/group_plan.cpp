// plan_auto and its cost model (placement.h): pipelines of tensor-parallel groups chosen from the
// measured links. docs/cluster.md ("Choosing a plan") explains the cost model.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <optional>

#include "cluster/placement/placement.h"
#include "util/error.h"

namespace herd::cluster {

void LinkTable::set(const std::string& a, const std::string& b, LinkEstimate link) {
  for (auto& [key, value] : links_) {
    if ((key.first == a && key.second == b) || (key.first == b && key.second == a)) {
      value = link;
      return;
    }
  }
  links_.push_back({{a, b}, link});
}

LinkEstimate LinkTable::between(const std::string& a, const std::string& b) const {
  for (const auto& [key, value] : links_) {
    if ((key.first == a && key.second == b) || (key.first == b && key.second == a)) return value;
  }
  return {};
}

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double transfer(const LinkEstimate& link, double bytes) {
  return link.latency_s + (link.bandwidth_bytes_per_s > 0 ? bytes / link.bandwidth_bytes_per_s : 0);
}

const PlacementMember& member(const std::vector<PlacementMember>& members, const std::string& id) {
  for (const auto& m : members)
    if (m.id == id) return m;
  fail_argument("node '{}' of the plan is not a member", id);
}

std::uint64_t sum(const std::vector<std::uint64_t>& v, int a, int b) {
  return std::accumulate(v.begin() + a, v.begin() + b, std::uint64_t{0});
}

}  // namespace

double estimate_seconds_per_token(const ModelShape& model, const Plan& plan,
                                  const std::vector<PlacementMember>& members,
                                  const LinkTable& links, std::int64_t n_vocab) {
  const double act = static_cast<double>(model.activation_bytes);
  const int n_layer = static_cast<int>(model.layer_bytes.size());
  double total = 0;
  std::string previous_leader;
  std::size_t i = 0;
  while (i < plan.stages.size()) {
    std::size_t j = i;
    while (j < plan.stages.size() && plan.stages[j].group == plan.stages[i].group) ++j;
    const Stage& lead = plan.stages[i];
    double bandwidth = 0;
    for (std::size_t k = i; k < j; ++k)
      bandwidth += member(members, plan.stages[k].node_id).bandwidth_bytes_per_s;
    double bytes = static_cast<double>(sum(model.layer_bytes, lead.first_layer, lead.last_layer));
    if (lead.last_layer == n_layer) bytes += static_cast<double>(model.head_bytes);
    total += bytes / bandwidth;
    const std::size_t n = j - i;
    if (n > 1) {
      // The slowest link inside the group bounds every exchange.
      LinkEstimate worst{0, kInf};
      for (std::size_t a = i; a < j; ++a) {
        for (std::size_t b = a + 1; b < j; ++b) {
          const LinkEstimate l = links.between(plan.stages[a].node_id, plan.stages[b].node_id);
          worst.latency_s = std::max(worst.latency_s, l.latency_s);
          if (l.bandwidth_bytes_per_s > 0)
            worst.bandwidth_bytes_per_s = std::min(worst.bandwidth_bytes_per_s, l.bandwidth_bytes_per_s);
        }
      }
      if (std::isinf(worst.bandwidth_bytes_per_s)) worst.bandwidth_bytes_per_s = 0;
      const double exchange =
          worst.latency_s + (worst.bandwidth_bytes_per_s > 0
                                 ? static_cast<double>(n - 1) * act / worst.bandwidth_bytes_per_s
                                 : 0);
      total += 2.0 * (lead.last_layer - lead.first_layer) * exchange;
      total += transfer(worst, act);  // the leader passes the batch on
    }
    if (!previous_leader.empty()) total += transfer(links.between(previous_leader, lead.node_id), act);
    previous_leader = lead.node_id;
    i = j;
  }
  // The logits come back to the coordinator from the last group's leader.
  if (!plan.stages.empty() && previous_leader != plan.stages[0].node_id) {
    total += transfer(links.between(previous_leader, plan.stages[0].node_id),
                      4.0 * static_cast<double>(n_vocab));
  }
  return total;
}

namespace {

// Every way to split `ids` (leader first) into groups: restricted growth strings.
void partitions(int n, const std::function<void(const std::vector<int>&)>& visit) {
  std::vector<int> label(n, 0);
  std::function<void(int, int)> rec = [&](int i, int max_label) {
    if (i == n) {
      visit(label);
      return;
    }
    for (int l = 0; l <= max_label + 1; ++l) {
      label[i] = l;
      rec(i + 1, std::max(max_label, l));
    }
  };
  label[0] = 0;
  rec(1, 0);
}

// Shares in proportion to `weights`, but none above its `caps` (what its node's memory holds):
// what a capped rank cannot take goes to the others in proportion to theirs (water-filling).
// nullopt when even all the caps together are less than the whole.
std::optional<std::vector<double>> capped_shares(const std::vector<double>& weights,
                                                 const std::vector<double>& caps) {
  const std::size_t n = weights.size();
  std::vector<double> share(n, 0);
  std::vector<bool> fixed(n, false);
  double remaining = 1.0;
  for (std::size_t round = 0; round <= n; ++round) {
    double sum = 0;
    for (std::size_t r = 0; r < n; ++r)
      if (!fixed[r]) sum += weights[r];
    if (sum <= 0) break;
    bool capped = false;
    for (std::size_t r = 0; r < n; ++r) {
      if (fixed[r] || remaining * weights[r] / sum <= caps[r]) continue;
      share[r] = std::max(0.0, caps[r]);
      fixed[r] = true;
      remaining -= share[r];
      capped = true;
    }
    if (capped) continue;
    for (std::size_t r = 0; r < n; ++r)
      if (!fixed[r]) share[r] = remaining * weights[r] / sum;
    return share;
  }
  return std::nullopt;  // every rank capped: their memory together holds less than the whole
}

// A plan for groups in this order (group 0 holds the leader, first), layers in proportion to each
// group's bandwidth; nullopt when a rank cannot hold its share (then `why`, when given, says which
// and by how much).
std::optional<Plan> grouped_plan(const ModelShape& model, const std::vector<PlacementMember>& members,
                                 const std::vector<std::vector<int>>& groups,
                                 const PlacementOptions& options, std::string* why = nullptr) {
  const int n_layer = static_cast<int>(model.layer_bytes.size());
  if (static_cast<int>(groups.size()) > n_layer) return std::nullopt;
  // A rank's weight in its group: its bandwidth snapped to quarters of the group's fastest (two
  // nodes of one kind measure a few percent apart; an uneven split for noise only makes one wait).
  std::vector<std::vector<double>> weight(groups.size());
  std::vector<double> speed;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    double fastest = 0;
    for (int m : groups[g]) fastest = std::max(fastest, members[m].bandwidth_bytes_per_s);
    double s = 0;
    for (int m : groups[g]) {
      weight[g].push_back(
          std::max(0.25, std::round(members[m].bandwidth_bytes_per_s / fastest * 4) / 4));
      s += members[m].bandwidth_bytes_per_s;
    }
    speed.push_back(s);
  }
  // Cumulative rounding of the layers; every group at least one.
  const double total_speed = std::accumulate(speed.begin(), speed.end(), 0.0);
  std::vector<int> bounds = {0};
  double acc = 0;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    acc += speed[g];
    int b = g + 1 == groups.size() ? n_layer
                                   : static_cast<int>(std::lround(acc / total_speed * n_layer));
    b = std::clamp(b, bounds.back() + 1, n_layer - static_cast<int>(groups.size() - g - 1));
    bounds.push_back(b);
  }
  Plan plan;
  plan.mode = groups.size() == 1 && groups[0].size() > 1 ? "tensor" : "hybrid";
  bool any_group = false;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const int a = bounds[g], b = bounds[g + 1];
    const std::uint64_t layers = sum(model.layer_bytes, a, b);
    const std::uint64_t kv = model.kv_bytes_per_token_per_layer * static_cast<std::uint64_t>(b - a) *
                             static_cast<std::uint64_t>(std::max<std::int64_t>(model.n_ctx, 0));
    any_group = any_group || groups[g].size() > 1;
    // Each rank's share follows its bandwidth, but never beyond what its memory holds (a node
    // that measured fast on a busy machine must not be given more than it can keep).
    auto extra_of = [&](std::size_t r) {
      std::uint64_t extra = options.per_node_overhead_bytes;
      if (r == 0 && a == 0) extra += model.embedding_bytes;
      if (r == 0 && b == n_layer) extra += model.head_bytes;
      return extra;
    };
    std::vector<double> caps;
    for (std::size_t r = 0; r < groups[g].size(); ++r) {
      const std::uint64_t usable = members[groups[g][r]].usable_memory_bytes;
      const std::uint64_t extra = extra_of(r);
      caps.push_back(usable > extra && layers + kv > 0
                         ? static_cast<double>(usable - extra) / static_cast<double>(layers + kv)
                         : 0.0);
    }
    const auto shares = capped_shares(weight[g], caps);
    for (std::size_t r = 0; r < groups[g].size(); ++r) {
      const PlacementMember& m = members[groups[g][r]];
      Stage s;
      s.node_id = m.id;
      s.first_layer = a;
      s.last_layer = b;
      s.group = static_cast<int>(g);
      s.share = shares ? (*shares)[r]
                       : weight[g][r] / std::accumulate(weight[g].begin(), weight[g].end(), 0.0);
      s.weight_bytes = static_cast<std::uint64_t>(static_cast<double>(layers) * s.share);
      if (r == 0 && a == 0) s.weight_bytes += model.embedding_bytes;
      if (r == 0 && b == n_layer) s.weight_bytes += model.head_bytes;
      s.kv_bytes = static_cast<std::uint64_t>(static_cast<double>(kv) * s.share);
      s.total_bytes = s.weight_bytes + s.kv_bytes + options.per_node_overhead_bytes;
      s.usable_bytes = m.usable_memory_bytes;
      if (s.total_bytes > s.usable_bytes) {
        if (why) {
          *why = fmt::format("node '{}' would need {} ({:.0f}% of layers {}-{} and their KV cache) "
                             "but offers {}",
                             m.id, format_bytes(s.total_bytes), 100 * s.share, a, b - 1,
                             format_bytes(s.usable_bytes));
        }
        return std::nullopt;
      }
      s.seconds_per_token = static_cast<double>(layers) / speed[g];
      s.reason = groups[g].size() > 1
                     ? fmt::format("group {} rank {}: {:.0f}% of layers {}-{}", g, r,
                                   100 * s.share, a, b - 1)
                     : fmt::format("layers {}-{}", a, b - 1);
      plan.stages.push_back(s);
    }
  }
  if (!any_group) plan.mode = "pipeline";
  return plan;
}

}  // namespace

Plan plan_tensor(const ModelShape& model, const std::vector<PlacementMember>& members,
                 const std::string& leader, const PlacementOptions& options) {
  if (model.layer_bytes.empty()) fail_argument("the model has no layers");
  std::vector<int> group;
  for (std::size_t i = 0; i < members.size(); ++i) {
    if (!(members[i].bandwidth_bytes_per_s > 0))
      fail_argument("member '{}' has no measured speed", members[i].id);
    if (members[i].id == leader) group.insert(group.begin(), static_cast<int>(i));
  }
  if (group.empty()) fail_argument("the leader '{}' is not a member", leader);
  std::vector<int> others;
  for (std::size_t i = 0; i < members.size(); ++i)
    if (members[i].id != leader) others.push_back(static_cast<int>(i));
  std::sort(others.begin(), others.end(),
            [&](int a, int b) { return members[a].id < members[b].id; });
  group.insert(group.end(), others.begin(), others.end());
  std::string why;
  std::optional<Plan> p = grouped_plan(model, members, {group}, options, &why);
  if (!p) {
    fail("tensor parallelism does not fit: {}: give it more memory (--memory-limit) or use "
         "--parallel-mode pipeline",
         why);
  }
  // Every member's own link estimate, for the exchanges' cost.
  LinkTable links;
  for (std::size_t a = 0; a < members.size(); ++a)
    for (std::size_t b = a + 1; b < members.size(); ++b)
      links.set(members[a].id, members[b].id,
                {std::max(members[a].link.latency_s, members[b].link.latency_s),
                 std::min(members[a].link.bandwidth_bytes_per_s, members[b].link.bandwidth_bytes_per_s)});
  p->seconds_per_token = estimate_seconds_per_token(model, *p, members, links, 0);
  p->bottleneck_seconds = p->seconds_per_token;
  p->summary = fmt::format(
      "tensor parallel: {} nodes run every layer together, each its share of the heads and the "
      "feed-forward; est. {:.1f} ms/token",
      members.size(), p->seconds_per_token * 1e3);
  return *p;
}

Plan plan_auto(const ModelShape& model, const std::vector<PlacementMember>& members,
               const std::string& leader, const LinkTable& links, std::int64_t n_vocab,
               const PlacementOptions& options) {
  const int n = static_cast<int>(members.size());
  int lead = -1;
  for (int i = 0; i < n; ++i)
    if (members[i].id == leader) lead = i;
  if (lead < 0) fail_argument("the leader '{}' is not a member", leader);
  std::vector<int> others;
  for (int i = 0; i < n; ++i)
    if (i != lead) others.push_back(i);

  struct Best {
    std::optional<Plan> plan;
    double seconds = kInf;
    std::size_t nodes = 0;
  };
  Best best, best_pipeline, best_tensor;
  auto consider = [&](Plan p) {
    p.seconds_per_token = estimate_seconds_per_token(model, p, members, links, n_vocab);
    p.bottleneck_seconds = p.seconds_per_token;
    auto better = [&](const Best& b) {
      if (!b.plan) return true;
      if (p.seconds_per_token < b.seconds * (1 - options.equal_speed_tolerance)) return true;
      return p.seconds_per_token <= b.seconds * (1 + options.equal_speed_tolerance) &&
             p.stages.size() < b.nodes;
    };
    Best* kinds[] = {&best, p.mode == "pipeline" ? &best_pipeline : nullptr,
                     p.mode == "tensor" ? &best_tensor : nullptr};
    for (Best* b : kinds) {
      if (b && better(*b)) *b = {p, p.seconds_per_token, p.stages.size()};
    }
  };

  // The layer-range pipeline of plan() (memory-aware), with the leader first.
  try {
    Plan p = plan(model, members, options);
    auto it = std::find_if(p.stages.begin(), p.stages.end(),
                           [&](const Stage& s) { return s.node_id == leader; });
    if (it == p.stages.begin()) {
      for (std::size_t i = 0; i < p.stages.size(); ++i) p.stages[i].group = static_cast<int>(i);
      consider(p);
    }
  } catch (const Error&) {
  }

  // Subsets with the leader (all members only, above 6), each partitioned into ordered groups.
  const int m = static_cast<int>(others.size());
  const bool subsets = n <= 6;
  for (unsigned mask = subsets ? 0 : (1u << m) - 1; mask < (1u << m); ++mask) {
    std::vector<int> chosen = {lead};
    for (int i = 0; i < m; ++i)
      if (mask >> i & 1) chosen.push_back(others[i]);
    partitions(static_cast<int>(chosen.size()), [&](const std::vector<int>& label) {
      const int k = *std::max_element(label.begin(), label.end()) + 1;
      std::vector<std::vector<int>> groups(k);
      for (std::size_t i = 0; i < chosen.size(); ++i) groups[label[i]].push_back(chosen[i]);
      // Group 0 holds the leader (first); the others in every order (up to 4! = 24), else as they
      // come.
      std::vector<int> order(k - 1);
      std::iota(order.begin(), order.end(), 1);
      do {
        std::vector<std::vector<int>> ordered = {groups[0]};
        for (int g : order) ordered.push_back(groups[g]);
        if (auto p = grouped_plan(model, members, ordered, options)) consider(std::move(*p));
      } while (k <= 5 && std::next_permutation(order.begin(), order.end()));
    });
  }
  if (!best.plan) {
    fail("no plan fits: the members' memory cannot hold the model's weights and KV cache in any "
         "pipeline or tensor-parallel grouping; add a node, give them more memory "
         "(--memory-limit) or use a shorter context (-c)");
  }
  Plan out = *best.plan;
  auto est = [](const Best& b) {
    return b.plan ? fmt::format("{:.1f} ms", b.seconds * 1e3) : std::string("does not fit");
  };
  std::string groups_text;
  int last_group = -1, n_groups = 0;
  for (const Stage& s : out.stages) {
    if (s.group != last_group) {
      groups_text += last_group < 0 ? "[" : "] -> [";
      ++n_groups;
    } else {
      groups_text += " ";
    }
    groups_text += s.node_id;
    last_group = s.group;
  }
  groups_text += "]";
  out.summary = fmt::format(
      "{} stage(s) on {} of {} node(s), {} plan {}: est. {:.1f} ms/token (best pipeline {}, "
      "best single tensor group {}); a [group] runs its layers on all its nodes at once, arrows "
      "are pipeline hops",
      n_groups, out.stages.size(), members.size(), out.mode, groups_text,
      out.seconds_per_token * 1e3, est(best_pipeline), est(best_tensor));
  return out;
}

}  // namespace herd::cluster
