#include "cluster/control/membership.h"

#include <gtest/gtest.h>

namespace herd::cluster {
namespace {

NodeInfo node(const std::string& id, const std::string& model = "",
              std::uint64_t memory = 8ull << 30) {
  NodeInfo n;
  n.id = id;
  n.name = id + ".local";
  n.address = {"10.0.0.1", 8080, 7070};
  n.model = model;
  n.resources.usable_memory_bytes = memory;
  n.resources.threads = 8;
  n.resources.cpu_features = "avx2";
  n.resources.profile = {50, 40};
  return n;
}

Message msg(MessageType type, NodeInfo info, std::uint64_t seq) {
  Message m;
  m.type = type;
  m.node = std::move(info);
  m.seq = seq;
  return m;
}

std::vector<MemberEventType> types(const std::vector<MemberEvent>& events) {
  std::vector<MemberEventType> out;
  for (const auto& e : events) out.push_back(e.type);
  return out;
}

using T = MemberEventType;

TEST(Membership, StartsWithSelfAsOnlyMemberAndCoordinator) {
  Membership table(node("m"));
  EXPECT_EQ(table.members().size(), 1u);
  EXPECT_TRUE(table.is_coordinator());
}

TEST(Membership, AnnounceFromUnknownNodeJoinsIt) {
  Membership table(node("m"));
  auto events = table.on_message(msg(MessageType::kAnnounce, node("p"), 1), 1000);
  ASSERT_EQ(types(events), (std::vector<T>{T::kJoined}));
  EXPECT_EQ(events[0].node_id, "p");
  ASSERT_NE(table.find("p"), nullptr);
  EXPECT_EQ(table.find("p")->joined_ms, 1000);
  // Further heartbeats from it are not news.
  EXPECT_TRUE(table.on_message(msg(MessageType::kHeartbeat, node("p"), 2), 2000).empty());
}

TEST(Membership, SilentMemberTimesOutAfterTheTimeoutAndNotBefore) {
  Membership table(node("m"), {1000, 4000, 0.05});
  table.on_message(msg(MessageType::kJoin, node("p"), 1), 0);
  table.on_message(msg(MessageType::kHeartbeat, node("p"), 2), 1000);
  EXPECT_TRUE(table.tick(5000).empty());  // exactly the timeout: still in
  auto events = table.tick(5001);
  ASSERT_EQ(types(events), (std::vector<T>{T::kTimedOut}));
  EXPECT_EQ(events[0].node_id, "p");
  EXPECT_EQ(table.find("p"), nullptr);
  EXPECT_NE(table.find("m"), nullptr);  // self never times out
  EXPECT_TRUE(table.tick(100'000).empty());
}

TEST(Membership, LeaveRemovesAtOnceWithItsReason) {
  Membership table(node("m"));
  table.on_message(msg(MessageType::kJoin, node("p"), 1), 0);
  Message leave;
  leave.type = MessageType::kLeave;
  leave.node.id = "p";
  leave.reason = "shutdown";
  auto events = table.on_message(leave, 10);
  ASSERT_EQ(types(events), (std::vector<T>{T::kLeft}));
  EXPECT_EQ(events[0].detail, "shutdown");
  EXPECT_TRUE(table.on_message(leave, 11).empty());  // leaving twice is not news
}

TEST(Membership, LargeResourceChangeIsReportedSmallDriftIsNot) {
  Membership table(node("m"));
  table.on_message(msg(MessageType::kJoin, node("p", "", 8000ull << 20), 1), 0);
  EXPECT_TRUE(
      table.on_message(msg(MessageType::kHeartbeat, node("p", "", 7900ull << 20), 2), 10).empty());
  // Drift accumulates against the last reported value, not the last message.
  EXPECT_TRUE(
      table.on_message(msg(MessageType::kHeartbeat, node("p", "", 7700ull << 20), 3), 20).empty());
  auto events = table.on_message(msg(MessageType::kHeartbeat, node("p", "", 7500ull << 20), 4), 30);
  ASSERT_EQ(types(events), (std::vector<T>{T::kResourcesChanged}));
  EXPECT_EQ(table.find("p")->info.resources.usable_memory_bytes, 7500ull << 20);
  auto more_threads = node("p", "", 7500ull << 20);
  more_threads.resources.threads = 16;
  EXPECT_EQ(types(table.on_message(msg(MessageType::kHeartbeat, more_threads, 5), 40)),
            (std::vector<T>{T::kResourcesChanged}));
}

TEST(Membership, StaleReorderedMessageDoesNotOverwriteNewerState) {
  Membership table(node("m"));
  table.on_message(msg(MessageType::kJoin, node("p", "", 4ull << 30), 10), 0);
  EXPECT_TRUE(
      table.on_message(msg(MessageType::kHeartbeat, node("p", "", 1ull << 30), 9), 100).empty());
  EXPECT_EQ(table.find("p")->info.resources.usable_memory_bytes, 4ull << 30);
  EXPECT_EQ(table.find("p")->last_seen_ms, 0);
}

TEST(Membership, OwnLoopedBackMessagesAreIgnored) {
  Membership table(node("m"));
  EXPECT_TRUE(table.on_message(msg(MessageType::kAnnounce, node("m"), 99), 0).empty());
  EXPECT_EQ(table.members().size(), 1u);
}

TEST(Membership, ModelHolderCoordinatesTiesByLowestIdAndFailsOver) {
  Membership table(node("m"));
  auto e1 = table.on_message(msg(MessageType::kJoin, node("z", "model.gguf"), 1), 0);
  ASSERT_EQ(types(e1), (std::vector<T>{T::kJoined, T::kCoordinatorChanged}));
  EXPECT_EQ(e1[1].node_id, "z");
  EXPECT_FALSE(table.is_coordinator());
  auto e2 = table.on_message(msg(MessageType::kJoin, node("k", "model.gguf"), 1), 0);
  ASSERT_EQ(types(e2), (std::vector<T>{T::kJoined, T::kCoordinatorChanged}));
  EXPECT_EQ(table.coordinator(), "k");
  table.on_message(msg(MessageType::kHeartbeat, node("z", "model.gguf"), 2), 3000);
  auto e3 = table.tick(4500);  // k silent since 0
  ASSERT_EQ(types(e3), (std::vector<T>{T::kTimedOut, T::kCoordinatorChanged}));
  EXPECT_EQ(table.coordinator(), "z");
  table.tick(8000);
  EXPECT_EQ(table.coordinator(), "m");  // nobody holds the model: lowest id
  EXPECT_TRUE(table.is_coordinator());
}

// A holder that coordinates keeps the role when one with a lower id comes back (a restarted
// former coordinator must not take over a serving cluster); a flag on a node without a model
// means nothing.
TEST(Membership, ACoordinatingHolderKeepsTheRole) {
  Membership table(node("m"));
  NodeInfo z = node("z", "model.gguf");
  z.coordinating = true;
  table.on_message(msg(MessageType::kJoin, z, 1), 0);
  EXPECT_EQ(table.coordinator(), "z");
  auto e = table.on_message(msg(MessageType::kJoin, node("a", "model.gguf"), 1), 0);
  EXPECT_EQ(types(e), (std::vector<T>{T::kJoined}));
  EXPECT_EQ(table.coordinator(), "z");
  z.coordinating = false;  // it stops coordinating (shutting down): the lowest holder again
  auto e2 = table.on_message(msg(MessageType::kHeartbeat, z, 2), 0);
  ASSERT_EQ(types(e2), (std::vector<T>{T::kCoordinatorChanged}));
  EXPECT_EQ(table.coordinator(), "a");
}

TEST(Membership, UpdateSelfReportsOnlySignificantChanges) {
  Membership table(node("m"));
  EXPECT_TRUE(table.update_self(node("m", "", (8ull << 30) - (1 << 20))).empty());
  auto events = table.update_self(node("m", "llama.gguf"));
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0].type, T::kResourcesChanged);
  EXPECT_EQ(table.self().model, "llama.gguf");
}

}  // namespace
}  // namespace herd::cluster
