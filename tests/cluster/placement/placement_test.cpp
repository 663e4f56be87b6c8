#include "cluster/placement/placement.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "util/error.h"

namespace herd::cluster {
namespace {

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
constexpr double kGBs = 1e9;

// 32 layers of 200 MiB, 250 MiB embedding and head, KV 32 KiB per token per layer at 2048
// tokens (64 MiB per layer): about 8.5 GiB including the KV cache.
ModelShape llama_like(int n_layers = 32, std::uint64_t layer = 200 * kMiB) {
  ModelShape m;
  m.layer_bytes.assign(n_layers, layer);
  m.embedding_bytes = 250 * kMiB;
  m.head_bytes = 250 * kMiB;
  m.kv_bytes_per_token_per_layer = 32 * 1024;
  m.n_ctx = 2048;
  m.activation_bytes = 4096 * 4;
  return m;
}

std::uint64_t model_need(const ModelShape& m) {
  std::uint64_t total = m.embedding_bytes + m.head_bytes;
  for (auto b : m.layer_bytes) total += b + m.kv_bytes_per_token_per_layer * m.n_ctx;
  return total;
}

PlacementMember member(std::string id, std::uint64_t memory, double gbs) {
  return {std::move(id), memory, gbs * kGBs, {0.0002, 1e9}};
}

// What every plan must satisfy, whatever the case.
void expect_valid(const Plan& plan, const ModelShape& model,
                  const std::vector<PlacementMember>& members) {
  ASSERT_FALSE(plan.stages.empty());
  EXPECT_EQ(plan.stages.front().first_layer, 0);
  EXPECT_EQ(plan.stages.back().last_layer, static_cast<int>(model.layer_bytes.size()));
  std::vector<std::string> seen;
  std::uint64_t weights = 0;
  for (std::size_t j = 0; j < plan.stages.size(); ++j) {
    const auto& s = plan.stages[j];
    EXPECT_LT(s.first_layer, s.last_layer) << "stage " << j << " is empty";
    if (j > 0) {
      EXPECT_EQ(s.first_layer, plan.stages[j - 1].last_layer) << "stages must be contiguous";
    }
    EXPECT_LE(s.total_bytes, s.usable_bytes) << s.node_id << " is over its memory";
    EXPECT_EQ(std::count(seen.begin(), seen.end(), s.node_id), 0) << s.node_id << " used twice";
    seen.push_back(s.node_id);
    weights += s.weight_bytes;
    EXPECT_FALSE(s.reason.empty());
  }
  EXPECT_NE(plan.stages.front().reason.find("embedding"), std::string::npos);
  EXPECT_NE(plan.stages.back().reason.find("output head"), std::string::npos);
  std::uint64_t expected = model.embedding_bytes + model.head_bytes;
  for (auto b : model.layer_bytes) expected += b;
  EXPECT_EQ(weights, expected);
  EXPECT_EQ(plan.stages.size() + plan.unused.size(), members.size());
}

std::vector<int> layer_counts(const Plan& plan) {
  std::vector<int> out;
  for (const auto& s : plan.stages) out.push_back(s.last_layer - s.first_layer);
  return out;
}

struct Case {
  const char* name;
  ModelShape model;
  std::vector<PlacementMember> members;
  std::vector<std::string> nodes;  // expected pipeline (ids in order); empty = only check count
  std::size_t n_stages;
  std::vector<int> layers;  // expected layers per stage; empty = not checked
};

std::vector<Case> cases() {
  auto m = llama_like();
  std::vector<Case> out;
  out.push_back(
      {"model fits one of equal nodes: one stage, no hops",
       m,
       {member("b", 16 * kGiB, 50), member("a", 16 * kGiB, 50), member("c", 16 * kGiB, 50)},
       {"a"},
       1,
       {32}});
  // Not 16/16: the last stage also streams the 250 MiB output head every token (the embedding
  // costs one row), so 17/15 makes the slower of the two stages faster.
  out.push_back({"two equal nodes needed: balanced split",
                 m,
                 {member("a", 6 * kGiB, 50), member("b", 6 * kGiB, 50)},
                 {},
                 2,
                 {17, 15}});
  out.push_back({"three equal nodes needed, two suffice at the same speed? no: 45% caps",
                 m,
                 {member("a", model_need(m) * 45 / 100 + 512 * kMiB, 50),
                  member("b", model_need(m) * 45 / 100 + 512 * kMiB, 50),
                  member("c", model_need(m) * 45 / 100 + 512 * kMiB, 50)},
                 {},
                 3,
                 {}});
  out.push_back({"unequal memory, equal speed: big node takes what it can",
                 m,
                 {member("big", 7 * kGiB, 50), member("small", 3 * kGiB, 50)},
                 {},
                 2,
                 {}});
  out.push_back({"slow node left out when the fast ones suffice",
                 m,
                 {member("fast1", 6 * kGiB, 100), member("fast2", 6 * kGiB, 100),
                  member("slow", 16 * kGiB, 5)},
                 {},
                 2,
                 {}});
  out.push_back({"fast node that fits everything beats a split",
                 m,
                 {member("slow", 6 * kGiB, 20), member("fast", 16 * kGiB, 100),
                  member("slow2", 6 * kGiB, 20)},
                 {"fast"},
                 1,
                 {32}});
  return out;
}

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

class PlacementCases : public ::testing::TestWithParam<Case> {};

TEST_P(PlacementCases, PlanIsValidAndAsExpected) {
  const Case& c = GetParam();
  Plan p = plan(c.model, c.members);
  SCOPED_TRACE(p.explain());
  expect_valid(p, c.model, c.members);
  EXPECT_EQ(p.stages.size(), c.n_stages);
  if (!c.nodes.empty()) {
    std::vector<std::string> got;
    for (const auto& s : p.stages) got.push_back(s.node_id);
    EXPECT_EQ(got, c.nodes);
  }
  if (!c.layers.empty()) {
    EXPECT_EQ(layer_counts(p), c.layers);
  }
}

INSTANTIATE_TEST_SUITE_P(Table, PlacementCases, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return "case" + std::to_string(info.index); });

TEST(Placement, UnequalMemoryGivesTheBigNodeMoreLayersWithinItsCap) {
  auto m = llama_like();
  std::vector<PlacementMember> members = {member("big", 7 * kGiB, 50),
                                          member("small", 3 * kGiB, 50)};
  Plan p = plan(m, members);
  ASSERT_EQ(p.stages.size(), 2u);
  auto big =
      std::find_if(p.stages.begin(), p.stages.end(), [](auto& s) { return s.node_id == "big"; });
  auto small =
      std::find_if(p.stages.begin(), p.stages.end(), [](auto& s) { return s.node_id == "small"; });
  EXPECT_GT(big->last_layer - big->first_layer, small->last_layer - small->first_layer);
}

TEST(Placement, NeededNodesShareLayersInProportionToTheirSpeed) {
  auto m = llama_like();
  // Neither node holds the model alone; "fast" reads memory twice as fast as "slow", so balanced
  // stage times give it about twice the layers (memory allows up to ~23 each).
  std::vector<PlacementMember> members = {member("fast", 7 * kGiB, 100),
                                          member("slow", 7 * kGiB, 50)};
  Plan p = plan(m, members);
  SCOPED_TRACE(p.explain());
  expect_valid(p, m, members);
  ASSERT_EQ(p.stages.size(), 2u);
  int fast_layers = 0, slow_layers = 0;
  for (const auto& s : p.stages)
    (s.node_id == "fast" ? fast_layers : slow_layers) = s.last_layer - s.first_layer;
  EXPECT_NEAR(fast_layers, 2 * slow_layers, 3);
}

TEST(Placement, FastNodeCappedByMemoryTakesAllItCanHold) {
  auto m = llama_like();
  std::vector<PlacementMember> members = {member("fast", 6 * kGiB, 100),
                                          member("slow", 6 * kGiB, 25)};
  Plan p = plan(m, members);
  SCOPED_TRACE(p.explain());
  expect_valid(p, m, members);
  ASSERT_EQ(p.stages.size(), 2u);
  for (const auto& s : p.stages) {
    if (s.node_id != "fast") continue;
    // 5.5 GiB after overhead: 20 layers of 264 MiB (weights + KV) plus the 250 MiB embedding or
    // head.
    EXPECT_EQ(s.last_layer - s.first_layer, 20);
    EXPECT_NE(s.reason.find("memory-bound"), std::string::npos);
  }
}

TEST(Placement, SlowNodeLeftOutSaysWhy) {
  auto m = llama_like();
  std::vector<PlacementMember> members = {
      member("fast1", 6 * kGiB, 100), member("fast2", 6 * kGiB, 100), member("slow", 16 * kGiB, 5)};
  Plan p = plan(m, members);
  ASSERT_EQ(p.unused.size(), 1u);
  EXPECT_NE(p.unused[0].find("slow: not needed; the best plan with it is slower"),
            std::string::npos)
      << p.unused[0];
}

TEST(Placement, TooSmallClusterNamesBothSizesAndWhatToDo) {
  auto m = llama_like();
  try {
    plan(m, {member("a", 4 * kGiB, 50), member("b", 4 * kGiB, 50)});
    FAIL() << "planned a model that does not fit";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("model needs 8.7 GiB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cluster has 7.0 GiB usable"), std::string::npos) << msg;
    EXPECT_NE(msg.find("add a node"), std::string::npos) << msg;
    EXPECT_NE(msg.find("smaller quantization"), std::string::npos) << msg;
  }
}

TEST(Placement, OneHugeLayerThatFitsNoNodeIsNamed) {
  auto m = llama_like(8, 100 * kMiB);
  m.layer_bytes[3] = 5 * kGiB;
  try {
    plan(m, {member("a", 4 * kGiB, 50), member("b", 4 * kGiB, 50)});
    FAIL() << "planned a layer bigger than any node";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer 3 needs 5.1 GiB"), std::string::npos) << e.what();
  }
}

TEST(Placement, OneHugeLayerThatFitsOneNodeGetsThatNode) {
  auto m = llama_like(8, 100 * kMiB);
  m.layer_bytes[3] = 3 * kGiB;
  std::vector<PlacementMember> members = {member("a", 2 * kGiB, 50), member("b", 4 * kGiB, 50),
                                          member("c", 2 * kGiB, 50)};
  Plan p = plan(m, members);
  SCOPED_TRACE(p.explain());
  expect_valid(p, m, members);
  for (const auto& s : p.stages)
    if (s.first_layer <= 3 && 3 < s.last_layer) {
      EXPECT_EQ(s.node_id, "b");
    }
}

TEST(Placement, NodeBelowOverheadIsUnusedWithReason) {
  auto m = llama_like(4, 100 * kMiB);
  Plan p = plan(m, {member("tiny", 256 * kMiB, 50), member("ok", 4 * kGiB, 50)});
  ASSERT_EQ(p.stages.size(), 1u);
  ASSERT_EQ(p.unused.size(), 1u);
  EXPECT_NE(p.unused[0].find("per-node overhead"), std::string::npos);
}

TEST(Placement, ResultDoesNotDependOnMemberOrder) {
  auto m = llama_like();
  std::vector<PlacementMember> members = {member("a", 4 * kGiB, 40), member("b", 5 * kGiB, 60),
                                          member("c", 3 * kGiB, 30), member("d", 4 * kGiB, 45)};
  Plan reference = plan(m, members);
  std::mt19937 rng(3);
  for (int i = 0; i < 5; ++i) {
    std::shuffle(members.begin(), members.end(), rng);
    Plan p = plan(m, members);
    ASSERT_EQ(p.stages.size(), reference.stages.size());
    for (std::size_t j = 0; j < p.stages.size(); ++j) {
      EXPECT_EQ(p.stages[j].node_id, reference.stages[j].node_id);
      EXPECT_EQ(p.stages[j].last_layer, reference.stages[j].last_layer);
    }
  }
}

TEST(Placement, RejectsBadInputWithAClearMessage) {
  auto m = llama_like();
  EXPECT_THROW(plan(m, {}), InvalidArgument);
  EXPECT_THROW(plan(ModelShape{}, {member("a", kGiB, 1)}), InvalidArgument);
  EXPECT_THROW(plan(m, {member("a", 16 * kGiB, 1), member("a", 16 * kGiB, 1)}), InvalidArgument);
  EXPECT_THROW(plan(m, {member("a", 16 * kGiB, 0)}), InvalidArgument);
}

TEST(Placement, ManyNodesUseTheHeuristicSearchAndStayValid) {
  auto m = llama_like(80, 150 * kMiB);
  std::vector<PlacementMember> members;
  for (int i = 0; i < 14; ++i)
    members.push_back(member("n" + std::to_string(10 + i), 2 * kGiB + i * 100 * kMiB, 20 + i));
  Plan p = plan(m, members);
  expect_valid(p, m, members);
}

TEST(Placement, ExplainShowsEveryStageAndUnusedNode) {
  auto m = llama_like();
  Plan p = plan(m, {member("fast1", 6 * kGiB, 100), member("fast2", 6 * kGiB, 100),
                    member("slow", 16 * kGiB, 5)});
  std::string table = p.explain();
  EXPECT_NE(table.find("fast1"), std::string::npos);
  EXPECT_NE(table.find("fast2"), std::string::npos);
  EXPECT_NE(table.find("not used: slow"), std::string::npos);
  EXPECT_NE(table.find("ms/token"), std::string::npos);
}

}  // namespace
}  // namespace herd::cluster

namespace herd::cluster {
namespace {

TEST(DefaultParallel, HalfTheFreeMemoryInSlotsBetweenOneAndEight) {
  constexpr std::uint64_t MiB = 1 << 20;
  // 1 GiB of weights, 128 MiB per sequence's cache: (8 - 1) GiB / 2 / 128 MiB = 28 -> 8.
  EXPECT_EQ(default_parallel(1024 * MiB, 128 * MiB, 8192 * MiB), kMaxDefaultParallel);
  // 600 MiB left: 300 / 128 -> 2.
  EXPECT_EQ(default_parallel(1024 * MiB, 128 * MiB, 1624 * MiB), 2);
  // Not even one slot in half the rest, or no room at all: still one.
  EXPECT_EQ(default_parallel(1024 * MiB, 128 * MiB, 1100 * MiB), 1);
  EXPECT_EQ(default_parallel(4096 * MiB, 128 * MiB, 1024 * MiB), 1);
}

}  // namespace
}  // namespace herd::cluster
