// plan_auto: pipelines of tensor-parallel groups chosen from measured links, table-driven.
#include <gtest/gtest.h>

#include <set>

#include "cluster/placement/placement.h"
#include "util/error.h"

namespace herd::cluster {
namespace {

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
constexpr double kGBs = 1e9;
// The test models' vocabulary (stories260K's). With Llama 3's 128256 the logits row (513 KB) costs
// 20 ms on the slow link below, and ending the pipeline next to the coordinator wins instead.
constexpr std::int64_t kVocab = 512;

// A 1B-like model: 16 layers of 34 MiB, hidden state 2048 floats.
ModelShape small_model() {
  ModelShape m;
  m.layer_bytes.assign(16, 34 * kMiB);
  m.embedding_bytes = 10 * kMiB;
  m.head_bytes = 10 * kMiB;
  m.kv_bytes_per_token_per_layer = 8 * 1024;
  m.n_ctx = 512;
  m.activation_bytes = 2048 * 4;
  return m;
}

PlacementMember node(const std::string& id, std::uint64_t memory = 8 * kGiB, double gbs = 15) {
  return {id, memory, gbs * kGBs, {}};
}

const LinkEstimate kFast{50e-6, 1e9};           // same switch: 0.05 ms, 1 GB/s
const LinkEstimate kSlow{2e-3, 200e6 / 8};      // 2 ms, 200 Mbit/s
const LinkEstimate kLan{0.5e-3, 1e9 / 8};       // 0.5 ms, 1 Gbit/s

// The plan's groups as sets of node ids, in pipeline order.
std::vector<std::set<std::string>> groups_of(const Plan& p) {
  std::vector<std::set<std::string>> out;
  int last = -1;
  for (const Stage& s : p.stages) {
    if (s.group != last) out.emplace_back();
    out.back().insert(s.node_id);
    last = s.group;
  }
  return out;
}

void expect_valid(const ModelShape& m, const Plan& p) {
  ASSERT_FALSE(p.stages.empty());
  // Groups cover the layers once, in order; shares of a group add up to 1.
  int next = 0;
  std::size_t i = 0;
  while (i < p.stages.size()) {
    const Stage& lead = p.stages[i];
    EXPECT_EQ(lead.first_layer, next);
    double share = 0;
    for (; i < p.stages.size() && p.stages[i].group == lead.group; ++i) {
      EXPECT_EQ(p.stages[i].first_layer, lead.first_layer);
      EXPECT_EQ(p.stages[i].last_layer, lead.last_layer);
      EXPECT_LE(p.stages[i].total_bytes, p.stages[i].usable_bytes);
      share += p.stages[i].share;
    }
    EXPECT_NEAR(share, 1.0, 1e-9);
    next = lead.last_layer;
  }
  EXPECT_EQ(next, static_cast<int>(m.layer_bytes.size()));
}

TEST(PlanAuto, TwoFastPairsOnASlowLinkAreTensorGroupsInAPipeline) {
  const ModelShape m = small_model();
  // Every node offers 35% of the model: no one or two nodes hold it alone.
  const std::uint64_t limit = 35 * (16 * 34 + 20) * kMiB / 100 + 64 * kMiB;
  const std::vector<PlacementMember> members = {node("a", limit), node("b", limit),
                                                node("c", limit), node("d", limit)};
  LinkTable links;
  links.set("a", "b", kFast);
  links.set("c", "d", kFast);
  for (const char* x : {"a", "b"})
    for (const char* y : {"c", "d"}) links.set(x, y, kSlow);
  PlacementOptions o;
  o.per_node_overhead_bytes = 0;
  const Plan p = plan_auto(m, members, "a", links, kVocab, o);
  expect_valid(m, p);
  EXPECT_EQ(p.mode, "hybrid") << p.explain();
  EXPECT_EQ(groups_of(p), (std::vector<std::set<std::string>>{{"a", "b"}, {"c", "d"}}))
      << p.explain();
  EXPECT_EQ(p.stages[0].node_id, "a");
  // And the summary compares it with the best pure plans, both slower.
  EXPECT_NE(p.summary.find("best pipeline"), std::string::npos) << p.summary;
  EXPECT_NE(p.summary.find("best single tensor group"), std::string::npos) << p.summary;
}

TEST(PlanAuto, EqualNodesOnFastLinksFormOneTensorGroup) {
  const ModelShape m = small_model();
  const std::vector<PlacementMember> members = {node("a"), node("b"), node("c")};
  LinkTable links;
  links.set("a", "b", kFast);
  links.set("a", "c", kFast);
  links.set("b", "c", kFast);
  const Plan p = plan_auto(m, members, "a", links, kVocab);
  expect_valid(m, p);
  EXPECT_EQ(p.mode, "tensor") << p.explain();
  EXPECT_EQ(p.stages.size(), 3u);
  // The estimate: a third of the bytes per node, plus 32 exchanges of ~0.07 ms.
  const double one_node = (16 * 34 + 10) * kMiB / (15 * kGBs);
  EXPECT_LT(p.seconds_per_token, one_node / 2) << p.explain();
}

TEST(PlanAuto, ASlowLinkNeverCarriesAllReduces) {
  // b is fast to a; c sits behind a slow link to both. Whatever is chosen, c is not in a's group.
  const ModelShape m = small_model();
  const std::vector<PlacementMember> members = {node("a"), node("b"), node("c")};
  LinkTable links;
  links.set("a", "b", kFast);
  links.set("a", "c", kSlow);
  links.set("b", "c", kSlow);
  const Plan p = plan_auto(m, members, "a", links, kVocab);
  expect_valid(m, p);
  for (const auto& g : groups_of(p)) {
    EXPECT_FALSE(g.count("c") && g.size() > 1) << p.explain();
  }
  EXPECT_EQ(groups_of(p).front(), (std::set<std::string>{"a", "b"})) << p.explain();
}

TEST(PlanAuto, SlowLinksEverywhereAndEnoughMemoryKeepTheModelOnOneNode) {
  const ModelShape m = small_model();
  const std::vector<PlacementMember> members = {node("a"), node("b")};
  LinkTable links;
  links.set("a", "b", {20e-3, 1e6});  // a bad Wi-Fi hop: 20 ms
  const Plan p = plan_auto(m, members, "a", links, kVocab);
  expect_valid(m, p);
  EXPECT_EQ(p.stages.size(), 1u) << p.explain();
  EXPECT_EQ(p.stages[0].node_id, "a");
}

TEST(PlanAuto, ExchangeCostGrowsWithTheGroupsLayersAndLatency) {
  const ModelShape m = small_model();
  const std::vector<PlacementMember> members = {node("a"), node("b")};
  Plan p;
  p.mode = "tensor";
  for (const char* id : {"a", "b"}) {
    Stage s;
    s.node_id = id;
    s.first_layer = 0;
    s.last_layer = 16;
    s.share = 0.5;
    p.stages.push_back(s);
  }
  LinkTable fast, lan;
  fast.set("a", "b", kFast);
  lan.set("a", "b", kLan);
  const double t_fast = estimate_seconds_per_token(m, p, members, fast, kVocab);
  const double t_lan = estimate_seconds_per_token(m, p, members, lan, kVocab);
  // 32 exchanges + one pass of the batch: each 0.45 ms more latency, 7 us less... per 8 KiB.
  const double expected = 33 * (kLan.latency_s - kFast.latency_s) +
                          33 * 2048 * 4 * (1 / kLan.bandwidth_bytes_per_s - 1 / kFast.bandwidth_bytes_per_s);
  EXPECT_NEAR(t_lan - t_fast, expected, 1e-6);
}

TEST(PlanTensor, OneGroupLeaderFirstWithSharesAndAClearErrorWhenANodeIsTooSmall) {
  const ModelShape m = small_model();
  const std::vector<PlacementMember> members = {node("c"), node("a"), node("b")};
  const Plan p = plan_tensor(m, members, "b");
  expect_valid(m, p);
  EXPECT_EQ(p.mode, "tensor");
  ASSERT_EQ(p.stages.size(), 3u);
  EXPECT_EQ(p.stages[0].node_id, "b");  // the leader, then the others by id
  EXPECT_EQ(p.stages[1].node_id, "a");
  EXPECT_EQ(p.stages[2].node_id, "c");
  // Both too small together (~560 MiB of weights against 264 MiB): a clear error.
  const std::vector<PlacementMember> small = {node("a", 200 * kMiB), node("b", 64 * kMiB)};
  try {
    plan_tensor(m, small, "a");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("node '"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("but offers"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--parallel-mode pipeline"), std::string::npos);
  }
}

TEST(PlanTensor, ASharePastWhatANodesMemoryHoldsGoesToTheOthers) {
  // b measured twice as fast (a busy machine's noise, or a faster node) but holds only ~250 MiB
  // beyond the per-node overhead: its share stops there, and a and c take the rest in proportion
  // to their speed.
  const ModelShape m = small_model();
  const std::uint64_t b_memory = PlacementOptions{}.per_node_overhead_bytes + 250 * kMiB;
  const std::vector<PlacementMember> members = {node("a"), node("b", b_memory, 30), node("c")};
  const Plan p = plan_tensor(m, members, "a");
  expect_valid(m, p);
  double total = 0;
  for (const Stage& s : p.stages) {
    total += s.share;
    EXPECT_LE(s.total_bytes, s.usable_bytes) << s.node_id;
  }
  EXPECT_NEAR(total, 1.0, 1e-9);
  ASSERT_EQ(p.stages[1].node_id, "b");
  EXPECT_LT(p.stages[1].share, 0.5);  // its speed alone would give it half
  EXPECT_GT(p.stages[1].share, 0.2);  // but it still takes what it can hold
  EXPECT_NEAR(p.stages[0].share, p.stages[2].share, 1e-9);
}

TEST(PlanAuto, NothingFitsIsAClearError) {
  const ModelShape m = small_model();
  const std::vector<PlacementMember> members = {node("a", 64 * kMiB), node("b", 64 * kMiB)};
  try {
    plan_auto(m, members, "a", LinkTable{}, kVocab);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--memory-limit"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace herd::cluster
