#include "cluster/control/messages.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "util/error.h"

namespace herd::cluster {
namespace {

const Secret& secret() {
  static Secret s("cluster-secret-for-tests-0123456789");
  return s;
}

Message sample(MessageType type = MessageType::kAnnounce) {
  Message m;
  m.type = type;
  m.seq = 42;
  m.node.id = "node-a";
  m.node.name = "alpha.local";
  m.node.model = "llama-3-8b-q4_k_m.gguf";
  m.node.address = {"192.168.1.10", 8080, 7070};
  m.node.resources.usable_memory_bytes = 12ull << 30;
  m.node.resources.threads = 8;
  m.node.resources.cpu_features = "avx2 fma f16c";
  m.node.resources.profile = {55.5, 38.25};
  m.node.resources.cpu = "AMD EPYC 9R14";
  m.node.live = {41.5, 123456789};
  return m;
}

constexpr std::int64_t kNow = 1'700'000'000'000;

TEST(Messages, JsonRoundTripKeepsEveryField) {
  for (auto type : {MessageType::kAnnounce, MessageType::kHeartbeat, MessageType::kJoin}) {
    auto m = sample(type);
    m.node.coordinating = !m.node.model.empty();
    auto back = message_from_json(message_to_json(m));
    EXPECT_EQ(back.type, type);
    EXPECT_EQ(back.seq, 42u);
    EXPECT_EQ(back.node, m.node);
  }
}

TEST(Messages, PowerIsLeftOutWhenNotAvailable) {
  auto m = sample();
  m.node.live.power_watts = -1;
  const std::string text = message_to_json(m);
  EXPECT_EQ(text.find("power_watts"), std::string::npos) << text;
  EXPECT_LT(message_from_json(text).node.live.power_watts, 0);
}

TEST(Messages, OlderNodesWithoutCpuNameOrLiveFiguresStillParse) {
  auto j = nlohmann::json::parse(message_to_json(sample()));
  j.erase("live");
  j["resources"].erase("cpu");
  const Message back = message_from_json(j.dump());
  EXPECT_EQ(back.node.resources.cpu, "");
  EXPECT_LT(back.node.live.power_watts, 0);
  EXPECT_EQ(back.node.live.rss_bytes, 0u);
  j["live"] = {{"power_watts", -3}};  // out of range: rejected, naming the field
  EXPECT_THROW(message_from_json(j.dump()), FormatError);
}

TEST(Messages, LeaveCarriesIdAndReasonOnly) {
  Message m;
  m.type = MessageType::kLeave;
  m.node.id = "node-b";
  m.reason = "shutting down";
  auto back = message_from_json(message_to_json(m));
  EXPECT_EQ(back.type, MessageType::kLeave);
  EXPECT_EQ(back.node.id, "node-b");
  EXPECT_EQ(back.reason, "shutting down");
}

TEST(Messages, SchemaViolationsNameTheField) {
  auto expect_bad = [](const std::string& json, const std::string& needle) {
    try {
      message_from_json(json);
      ADD_FAILURE() << "accepted " << json;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_bad(R"({"type":"leave","seq":1})", "\"id\"");
  expect_bad(R"({"type":"dance","seq":1,"id":"a"})", "unknown message type");
  expect_bad(R"({"type":"leave","seq":-1,"id":"a"})", "\"seq\"");
  expect_bad(R"({"type":"leave","seq":1,"id":"a b"})", "node id");
  expect_bad(R"([1,2])", "not a JSON object");
  auto j = message_to_json(sample());
  auto bad_port = j;
  bad_port.replace(bad_port.find("8080"), 4, "80800");
  expect_bad(bad_port, "api_port");
}

TEST(Envelope, SealedMessageOpensWithTheSameSecret) {
  ReplayGuard guard;
  auto opened = open(seal(sample(), secret(), kNow), secret(), guard, kNow + 200, "test");
  ASSERT_TRUE(opened) << opened.reason;
  EXPECT_EQ(opened.message->node, sample().node);
}

TEST(Envelope, WrongSecretIsRejectedAsBadMac) {
  ReplayGuard guard;
  auto datagram = seal(sample(), Secret("another-secret-entirely-xyz"), kNow);
  auto opened = open(datagram, secret(), guard, kNow);
  EXPECT_FALSE(opened);
  EXPECT_NE(opened.reason.find("bad MAC"), std::string::npos);
  EXPECT_EQ(guard.size(), 0u);  // unauthenticated input does not reach the replay guard
}

TEST(Envelope, AlteredPayloadOrTimestampIsRejected) {
  ReplayGuard guard;
  auto datagram = seal_with_nonce(sample(), secret(), kNow, "00112233445566778899aabbccddeeff");
  auto altered = datagram;
  altered.replace(altered.find("node-a"), 6, "node-z");
  EXPECT_FALSE(open(altered, secret(), guard, kNow));
  auto shifted = datagram;
  auto at = shifted.find(std::to_string(kNow));
  ASSERT_NE(at, std::string::npos);
  shifted.replace(at, 13, std::to_string(kNow + 1));
  EXPECT_FALSE(open(shifted, secret(), guard, kNow));
  EXPECT_TRUE(open(datagram, secret(), guard, kNow));
}

TEST(Envelope, ReplayAndStaleMessagesAreRejected) {
  ReplayGuard guard(30'000);
  auto datagram = seal(sample(), secret(), kNow);
  EXPECT_TRUE(open(datagram, secret(), guard, kNow));
  auto replay = open(datagram, secret(), guard, kNow + 10);
  EXPECT_FALSE(replay);
  EXPECT_NE(replay.reason.find("replayed"), std::string::npos);
  auto stale = open(seal(sample(), secret(), kNow - 60'000), secret(), guard, kNow);
  EXPECT_FALSE(stale);
}

TEST(Envelope, GarbageNeverCrashesAndIsRejected) {
  ReplayGuard guard;
  // A fixed nonce, so that the flips below land on the same bytes in every run.
  auto good = seal_with_nonce(sample(), secret(), kNow, "0123456789abcdef0123456789abcdef");
  std::vector<std::string> inputs = {"",
                                     "{",
                                     "null",
                                     "[]",
                                     "{\"v\":1}",
                                     std::string(100'000, '{'),
                                     std::string("\0\xff\xfe", 3),
                                     "{\"v\":2,\"payload\":\"x\"}",
                                     R"({"v":1,"payload":1,"nonce":"x","ts":1,"mac":"y"})"};
  // Sealed with another secret, and replays of a message already opened once.
  const Secret stranger("another-cluster-secret-0123456789");
  ReplayGuard seen;
  ASSERT_TRUE(open(good, secret(), seen, kNow));
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    inputs.push_back(seal(sample(), stranger, kNow));
  }
  // 10^4 in all: flipped bytes (1 to 4) and truncations of a good envelope.
  for (int i = 0; i < 5000; ++i) {
    auto s = good;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      // Every flip changes its byte (a flip to the same byte would leave the message intact).
      const std::size_t at = rng() % s.size();
      s[at] = static_cast<char>(s[at] ^ static_cast<char>(1 + rng() % 255));
    }
    inputs.push_back(s);
    inputs.push_back(good.substr(0, rng() % good.size()));
  }
  ASSERT_GE(inputs.size(), 10000u);
  for (const auto& input : inputs) {
    auto opened = open(input, secret(), guard, kNow);
    EXPECT_FALSE(opened);
    EXPECT_FALSE(opened.reason.empty());
  }
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(open(good, secret(), seen, kNow)) << "a replay";
}

}  // namespace
}  // namespace herd::cluster
