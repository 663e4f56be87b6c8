#include "cluster/control/discovery.h"

#include <gtest/gtest.h>

#include <chrono>

#include "cluster/control/membership.h"
#include "cluster/control/messages.h"
#include "cluster/unicast_config.h"
#include "util/error.h"
#include "util/log.h"

namespace herd::cluster {
namespace {

// Everything here stays on 127.0.0.1 (and multicast on the loopback interface, TTL 1).
constexpr const char* kLoopback = "127.0.0.1";

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

NodeInfo node(const std::string& id, std::uint16_t port) {
  NodeInfo n;
  n.id = id;
  n.name = id;
  n.address = {kLoopback, 8080, port};
  n.resources = {4ull << 30, 4, "avx2", {10, 20}};
  return n;
}

// Receives until `want` returns true or the deadline passes (bounded: never hangs the suite).
template <typename Want>
bool receive_until(Discovery& d, int timeout_ms, Want want) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto datagram = d.receive(50))
      if (want(*datagram)) return true;
  }
  return false;
}

TEST(Endpoint, ParsesHostPortAndRejectsNonsense) {
  EXPECT_EQ(parse_endpoint("10.1.2.3:7070"), (Endpoint{"10.1.2.3", 7070}));
  EXPECT_EQ(parse_endpoint("node-b.local:1"), (Endpoint{"node-b.local", 1}));
  for (const char* bad : {"10.1.2.3", ":7070", "host:", "host:0", "host:65536", "host:70x"})
    EXPECT_THROW(parse_endpoint(bad), InvalidArgument) << bad;
}

TEST(Discovery, BindsOnlyToTheRequestedAddress) {
  Discovery d(unicast_config({kLoopback, 0}));
  EXPECT_EQ(d.local().host, kLoopback);
  EXPECT_GT(d.local().port, 0);
  EXPECT_THROW(Discovery(unicast_config({"192.0.2.1", 0})),
               Error);  // TEST-NET address this host does not have
}

TEST(Discovery, AddPeerKeepsOneEntryPerPeer) {
  Discovery d(unicast_config({kLoopback, 0}));
  d.add_peer({kLoopback, 9});
  d.add_peer({kLoopback, 9});
  EXPECT_EQ(d.peers().size(), 1u);
}

TEST(Discovery, TwoNodesWithStaticPeersFindEachOtherAndRejectAStranger) {
  Secret secret("discovery-test-secret-0123456789");
  Discovery a(unicast_config({kLoopback, 0}));
  Discovery b(unicast_config({kLoopback, 0}, {a.local()}));
  a.add_peer(b.local());
  Membership table_a(node("a", a.local().port)), table_b(node("b", b.local().port));
  ReplayGuard guard_a, guard_b;

  auto announce = [&](const NodeInfo& self, std::uint64_t seq, const Secret& key) {
    Message m;
    m.type = MessageType::kAnnounce;
    m.node = self;
    m.seq = seq;
    return seal(m, key, now_ms());
  };
  EXPECT_EQ(a.broadcast(announce(table_a.self(), 1, secret)), 1);
  EXPECT_EQ(b.broadcast(announce(table_b.self(), 1, secret)), 1);

  auto joins = [](Membership& table, ReplayGuard& guard, const Secret& key) {
    return [&](const Datagram& d) {
      auto opened = open(d.bytes, key, guard, now_ms(), d.from.to_string());
      if (!opened) return false;
      auto events = table.on_message(*opened.message, now_ms());
      return !events.empty() && events[0].type == MemberEventType::kJoined;
    };
  };
  ASSERT_TRUE(receive_until(a, 3000, joins(table_a, guard_a, secret)));
  ASSERT_TRUE(receive_until(b, 3000, joins(table_b, guard_b, secret)));
  EXPECT_NE(table_a.find("b"), nullptr);
  EXPECT_NE(table_b.find("a"), nullptr);
  EXPECT_EQ(table_a.coordinator(), "a");
  EXPECT_EQ(table_b.coordinator(), "a");

  // A node with another secret reaches b's socket but not its member table.
  Discovery stranger(unicast_config({kLoopback, 0}, {b.local()}));
  spdlog::set_level(spdlog::level::off);
  stranger.broadcast(
      announce(node("evil", stranger.local().port), 1, Secret("some-other-secret-abcdefgh")));
  std::string reason;
  bool got = receive_until(b, 3000, [&](const Datagram& d) {
    auto opened = open(d.bytes, secret, guard_b, now_ms(), d.from.to_string());
    reason = opened.reason;
    return true;
  });
  spdlog::set_level(spdlog::level::warn);
  ASSERT_TRUE(got);
  EXPECT_NE(reason.find("bad MAC"), std::string::npos);
  EXPECT_EQ(table_b.find("evil"), nullptr);
}

TEST(Discovery, MulticastOnLoopbackWhenTheSandboxRoutesIt) {
  std::uint16_t port;
  {
    UdpSocket probe({kLoopback, 0});
    port = probe.local().port;
  }
  DiscoveryConfig config;
  config.bind = {kLoopback, 0};
  config.multicast = true;
  config.multicast_port = port;
  config.multicast_interface = kLoopback;
  std::unique_ptr<Discovery> a, b;
  try {
    a = std::make_unique<Discovery>(config);
    b = std::make_unique<Discovery>(config);
  } catch (const Error& e) {
    GTEST_SKIP() << "multicast unavailable on the loopback interface here: " << e.what();
  }
  a->broadcast("hello-multicast");
  bool heard =
      receive_until(*b, 1000, [](const Datagram& d) { return d.bytes == "hello-multicast"; });
  if (!heard)
    GTEST_SKIP() << "multicast on lo is not routed in this sandbox (static --peers still work)";
  EXPECT_TRUE(heard);
  // The sender's unicast address comes with it, so the receiver can answer (Join) directly.
  b->broadcast("reply");
  EXPECT_TRUE(receive_until(*a, 1000, [](const Datagram& d) { return d.bytes == "reply"; }));
}

}  // namespace
}  // namespace herd::cluster
