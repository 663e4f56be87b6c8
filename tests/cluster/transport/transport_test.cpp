// The Transport contract, run against every implementation: round trips, large messages, order,
// timeouts, and a dead peer turning into an error (never a hang).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "cluster/transport/transport_loopback.h"
#include "cluster/transport/ucx_transport.h"
#include "util/error.h"

namespace herd::cluster {
namespace {

using namespace std::chrono_literals;

constexpr Tag kTag = 7;
constexpr Tag kReplyTag = 8;

std::vector<std::uint8_t> pattern(std::size_t n, std::uint32_t seed) {
  std::vector<std::uint8_t> bytes(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& b : bytes) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<std::uint8_t>(x >> 24);
  }
  return bytes;
}

class TransportTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<Transport> make() {
    if (GetParam() == "loopback") return std::make_unique<LoopbackTransport>(fabric_);
    return std::make_unique<UcxTransport>();
  }
  // Two transports connected both ways.
  void make_pair() {
    a_ = make();
    b_ = make();
    a_to_b_ = a_->connect(b_->local_address(), "node 'b'");
    b_to_a_ = b_->connect(a_->local_address(), "node 'a'");
  }
  // Runs `body` on b's own thread (a UCX transport needs its owner to progress it).
  void run_b(std::function<void(Transport&)> body) {
    b_thread_ = std::thread([this, body = std::move(body)] {
      try {
        body(*b_);
      } catch (const std::exception& e) {
        b_error_ = e.what();
      }
    });
  }
  void TearDown() override {
    if (b_thread_.joinable()) b_thread_.join();
    EXPECT_EQ(b_error_, "");
  }

  std::shared_ptr<LoopbackFabric> fabric_ = std::make_shared<LoopbackFabric>();
  std::unique_ptr<Transport> a_, b_;
  PeerId a_to_b_ = 0, b_to_a_ = 0;
  std::thread b_thread_;
  std::string b_error_;
  std::vector<ReceivedMessage> b_got_;
};

TEST_P(TransportTest, RoundTripKeepsBytesAndNamesTheSender) {
  make_pair();
  run_b([this](Transport& b) {
    auto m = b.receive(kTag, std::nullopt, 10s);
    b.send(m.from, kReplyTag, m.bytes, 10s);
  });
  const auto sent = pattern(100, 1);
  a_->send(a_to_b_, kTag, sent, 10s);
  auto reply = a_->receive(kReplyTag, a_to_b_, 10s);
  EXPECT_EQ(reply.from, b_->self());
  EXPECT_EQ(reply.tag, kReplyTag);
  EXPECT_EQ(reply.bytes, sent);
}

TEST_P(TransportTest, EmptyAndLargeMessagesArriveIntact) {
  make_pair();
  run_b([this](Transport& b) {
    for (int i = 0; i < 2; ++i) {
      auto m = b.receive(kTag, b_to_a_, 10s);
      b.send(b_to_a_, kReplyTag, m.bytes, 10s);
    }
  });
  a_->send(a_to_b_, kTag, {}, 10s);
  EXPECT_TRUE(a_->receive(kReplyTag, a_to_b_, 10s).bytes.empty());
  const auto big = pattern(8u << 20, 2);  // 8 MiB: rendezvous in UCX
  a_->send(a_to_b_, kTag, big, 10s);
  auto reply = a_->receive(kReplyTag, a_to_b_, 10s);
  ASSERT_EQ(reply.bytes.size(), big.size());
  EXPECT_TRUE(reply.bytes == big);
}

TEST_P(TransportTest, ManyMessagesArriveInOrder) {
  make_pair();
  constexpr int kCount = 2000;
  run_b([this](Transport& b) {
    int in_order = 0;
    for (int i = 0; i < kCount; ++i) {
      auto m = b.receive(kTag, b_to_a_, 10s);
      if (m.bytes == pattern(1 + i % 300, i)) ++in_order;
    }
    std::vector<std::uint8_t> count(4);
    std::memcpy(count.data(), &in_order, 4);
    b.send(b_to_a_, kReplyTag, count, 10s);
  });
  for (int i = 0; i < kCount; ++i) a_->send(a_to_b_, kTag, pattern(1 + i % 300, i), 10s);
  auto reply = a_->receive(kReplyTag, a_to_b_, 20s);
  int in_order = 0;
  std::memcpy(&in_order, reply.bytes.data(), 4);
  EXPECT_EQ(in_order, kCount);
}

TEST_P(TransportTest, TagsAndSendersAreSelected) {
  make_pair();
  auto c = make();
  const PeerId c_to_b = c->connect(b_->local_address(), "node 'b'");
  const PeerId b_to_c = b_->connect(c->local_address(), "node 'c'");
  // `got` lives in the fixture: if a send below throws, b's thread still writes into it until
  // TearDown joins that thread.
  auto& got = b_got_;
  run_b([&got, b_to_c](Transport& b) {
    // b picks c's message first although a's came earlier; and the reply tag before kTag.
    got.push_back(b.receive(kTag, b_to_c, 10s));
    got.push_back(b.receive(kReplyTag, std::nullopt, 10s));
    got.push_back(b.receive(kTag, std::nullopt, 10s));
  });
  // A send may need the receiver to progress (connection set-up), so b is already receiving.
  a_->send(a_to_b_, kTag, pattern(10, 1), 10s);
  a_->send(a_to_b_, kReplyTag, pattern(10, 2), 10s);
  c->send(c_to_b, kTag, pattern(10, 3), 10s);
  b_thread_.join();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].bytes, pattern(10, 3));
  EXPECT_EQ(got[0].from, c->self());
  EXPECT_EQ(got[1].bytes, pattern(10, 2));
  EXPECT_EQ(got[2].from, a_->self());
  EXPECT_EQ(got[2].bytes, pattern(10, 1));
}

TEST_P(TransportTest, ReceiveTimesOutWithNothingOrAnError) {
  make_pair();
  EXPECT_FALSE(a_->try_receive(kTag, a_to_b_, 20ms).has_value());
  try {
    a_->receive(kTag, a_to_b_, 20ms);
    FAIL() << "receive did not time out";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("node 'b'"), std::string::npos) << e.what();
  }
}

TEST_P(TransportTest, MalformedAddressIsRejected) {
  a_ = make();
  const std::vector<std::uint8_t> junk = {1, 2, 3};
  EXPECT_THROW(a_->connect(junk, "node 'x'"), InvalidArgument);
}

TEST_P(TransportTest, DeadPeerIsAnErrorOnReceiveAndSend) {
  make_pair();
  run_b([this](Transport& b) {
    b.send(b_to_a_, kTag, pattern(10, 1), 10s);
    b_.reset();  // the node dies: its endpoints and sockets close without a goodbye
  });
  EXPECT_EQ(a_->receive(kTag, a_to_b_, 10s).bytes, pattern(10, 1));
  b_thread_.join();
  const auto start = std::chrono::steady_clock::now();
  try {
    a_->receive(kTag, a_to_b_, 30s);
    FAIL() << "receive from a dead peer returned";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("node 'b'"), std::string::npos) << e.what();
  }
  // Noticed from the connection, not by running out the 30 s.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 25s);
  EXPECT_TRUE(a_->peer_failure(a_to_b_).has_value());
  EXPECT_THROW(a_->send(a_to_b_, kTag, pattern(10, 2), 1s), Error);
}

// Every rank sends a large message to every other at the same moment (tensor parallelism's
// all-reduce): nobody waits for a send that needs the other side to receive first, and each gets
// every peer's bytes, in peer order.
TEST_P(TransportTest, ExchangeBetweenThreeAtOnceDeliversEveryonesBytes) {
  constexpr int kRanks = 3;
  constexpr std::size_t kBytes = 4u << 20;  // well past UCX's rendezvous threshold
  std::vector<std::unique_ptr<Transport>> t;
  for (int r = 0; r < kRanks; ++r) t.push_back(make());
  std::vector<std::vector<PeerId>> peers(kRanks);
  for (int r = 0; r < kRanks; ++r)
    for (int q = 0; q < kRanks; ++q)
      if (q != r) peers[r].push_back(t[r]->connect(t[q]->local_address(), "rank " + std::to_string(q)));
  std::vector<std::vector<ReceivedMessage>> got(kRanks);
  std::vector<std::string> errors(kRanks);
  std::vector<double> seconds(kRanks);
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      try {
        const auto bytes = pattern(kBytes, r);
        const auto start = std::chrono::steady_clock::now();
        for (int round = 0; round < 3; ++round) got[r] = t[r]->exchange(peers[r], kTag, bytes, 20s);
        seconds[r] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int r = 0; r < kRanks; ++r) {
    ASSERT_EQ(errors[r], "") << "rank " << r;
    ASSERT_EQ(got[r].size(), 2u);
    std::size_t i = 0;
    for (int q = 0; q < kRanks; ++q) {
      if (q == r) continue;
      EXPECT_EQ(got[r][i].bytes, pattern(kBytes, q)) << "rank " << r << " from " << q;
      ++i;
    }
  }
  std::printf("[ exchange ] %s: 3 ranks x 3 rounds of 4 MiB to each peer: %.1f ms a round\n",
              GetParam().c_str(), seconds[0] / 3 * 1e3);
}

INSTANTIATE_TEST_SUITE_P(Impl, TransportTest, ::testing::Values("loopback", "ucx"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace herd::cluster
