// Control-plane messages between `herd serve` nodes, as JSON inside a signed envelope:
//   {"v":1, "payload":"<message JSON as a string>", "nonce":"<32 hex>", "ts":<ms since epoch>,
//    "mac":"<64 hex>"}
// with mac = HMAC-SHA256(secret, "herd/1\n" + nonce + "\n" + ts + "\n" + payload). The payload is
// carried as a string so the MAC covers exactly the bytes that were sent (no re-serialisation).
// Everything parsed here comes from the network: malformed input is rejected with a reason, never
// a crash. Field reference: docs/cluster.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cluster/control/auth.h"

namespace herd::cluster {

enum class MessageType { kAnnounce, kHeartbeat, kJoin, kLeave };
const char* message_type_name(MessageType type);

struct NodeAddress {
  std::string host;                // as reachable by peers (IP or name)
  std::uint16_t api_port = 0;      // HTTP API
  std::uint16_t cluster_port = 0;  // control and data plane
  bool operator==(const NodeAddress&) const = default;
};

// Measured by node profiling at start-up.
struct NodeProfile {
  double matvec_gflops = 0;    // quantized matvec throughput
  double memory_gb_per_s = 0;  // util::measure_memory_bandwidth
  bool operator==(const NodeProfile&) const = default;
};

struct NodeResources {
  std::uint64_t usable_memory_bytes = 0;  // what this node offers for weights + KV cache
  int threads = 0;
  std::string cpu_features;  // herd::cpu_feature_string()
  std::string cpu;           // herd::cpu_model_name(), for people
  NodeProfile profile;
  bool operator==(const NodeResources&) const = default;
};

// What a node is doing now, sent with every heartbeat for the dashboard; changes of these never
// count as a change of the member (no re-planning, no log line).
struct NodeLive {
  double power_watts = -1;     // its CPU packages' power (util/energy.h); < 0: not available
  std::uint64_t rss_bytes = 0;  // its process's resident memory
  bool operator==(const NodeLive&) const = default;
};

struct NodeInfo {
  std::string id;    // stable, unique: [A-Za-z0-9._-], 1..64 characters
  std::string name;  // for people (hostname), up to 128 characters
  NodeAddress address;
  NodeResources resources;
  std::string model;  // the model file this node holds (name or digest), empty when none
  // It coordinates now (it serves the API's requests and has deployed a plan). A coordinator that
  // serves keeps the role when a holder with a lower id comes back (Membership::coordinator).
  bool coordinating = false;
  NodeLive live;
  bool operator==(const NodeInfo&) const = default;
};

// One struct for all four kinds. Announce (multicast/static beacon), Join (a node asks to be a
// member) and Heartbeat carry the full NodeInfo, so a peer learns of resource changes from any of
// them; Leave needs only node.id and may give a reason.
struct Message {
  MessageType type = MessageType::kHeartbeat;
  NodeInfo node;
  // Per sender, increases with every message it sends and across restarts: start it at the
  // wall-clock time in microseconds (make_sequence_start()) and add one per message.
  std::uint64_t seq = 0;
  std::string reason;  // Leave only
};

// A starting seq for a process: the current wall-clock time in microseconds.
std::uint64_t make_sequence_start();

// Largest datagram accepted or produced; bigger input is rejected before parsing.
constexpr std::size_t kMaxDatagramBytes = 16 * 1024;

std::string message_to_json(const Message& message);
// Throws FormatError naming the bad field.
Message message_from_json(std::string_view json);

// The envelope. `now_ms` is the sender's clock (ms since the Unix epoch).
std::string seal(const Message& message, const Secret& secret, std::int64_t now_ms);
std::string seal_with_nonce(const Message& message, const Secret& secret, std::int64_t ts_ms,
                            const std::string& nonce);

struct Opened {
  std::optional<Message> message;  // set when accepted
  std::string reason;              // why it was rejected otherwise
  explicit operator bool() const { return message.has_value(); }
};

// Checks size, JSON shape, MAC, then timestamp window and nonce (in that order, so an
// unauthenticated sender cannot fill the replay guard), then the payload schema. Never throws on
// bad input; logs each rejection at warn level with `from` (the sender's address) and the reason.
Opened open(std::string_view datagram, const Secret& secret, ReplayGuard& guard,
            std::int64_t now_ms, std::string_view from = "");

}  // namespace herd::cluster
