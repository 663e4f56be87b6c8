#include "cluster/control/messages.h"

#include <cctype>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/log.h"

namespace herd::cluster {

using nlohmann::json;

const char* message_type_name(MessageType type) {
  switch (type) {
    case MessageType::kAnnounce:
      return "announce";
    case MessageType::kHeartbeat:
      return "heartbeat";
    case MessageType::kJoin:
      return "join";
    case MessageType::kLeave:
      return "leave";
  }
  return "?";
}

std::uint64_t make_sequence_start() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

namespace {

MessageType parse_type(const std::string& name) {
  for (auto t :
       {MessageType::kAnnounce, MessageType::kHeartbeat, MessageType::kJoin, MessageType::kLeave})
    if (name == message_type_name(t)) return t;
  fail_format("unknown message type \"{}\"", name.substr(0, 32));
}

const json& field(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end()) fail_format("missing field \"{}\"", key);
  return *it;
}

std::string get_string(const json& object, const char* key, std::size_t max_len) {
  const json& v = field(object, key);
  if (!v.is_string()) fail_format("field \"{}\" must be a string", key);
  auto s = v.get<std::string>();
  if (s.size() > max_len) fail_format("field \"{}\" is longer than {} characters", key, max_len);
  return s;
}

std::uint64_t get_uint(const json& object, const char* key, std::uint64_t max) {
  const json& v = field(object, key);
  if (!v.is_number_unsigned()) fail_format("field \"{}\" must be a non-negative integer", key);
  auto n = v.get<std::uint64_t>();
  if (n > max) fail_format("field \"{}\" = {} is larger than {}", key, n, max);
  return n;
}

double get_rate(const json& object, const char* key) {
  const json& v = field(object, key);
  if (!v.is_number()) fail_format("field \"{}\" must be a number", key);
  double d = v.get<double>();
  if (!std::isfinite(d) || d < 0 || d > 1e9)
    fail_format("field \"{}\" = {} is out of range", key, d);
  return d;
}

void check_id(const std::string& id) {
  if (id.empty() || id.size() > 64) fail_format("node id must have 1..64 characters");
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
      fail_format("node id may only contain letters, digits, '.', '_' and '-'");
}

std::uint16_t get_port(const json& object, const char* key) {
  return static_cast<std::uint16_t>(get_uint(object, key, 65535));
}

}  // namespace

std::string message_to_json(const Message& m) {
  json j;
  j["type"] = message_type_name(m.type);
  j["seq"] = m.seq;
  j["id"] = m.node.id;
  if (m.type == MessageType::kLeave) {
    j["reason"] = m.reason;
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  const auto& n = m.node;
  j["name"] = n.name;
  j["model"] = n.model;
  if (n.coordinating) j["coordinating"] = true;
  j["address"] = {{"host", n.address.host},
                  {"api_port", n.address.api_port},
                  {"cluster_port", n.address.cluster_port}};
  j["resources"] = {{"usable_memory_bytes", n.resources.usable_memory_bytes},
                    {"threads", n.resources.threads},
                    {"cpu_features", n.resources.cpu_features},
                    {"cpu", n.resources.cpu},
                    {"profile",
                     {{"matvec_gflops", n.resources.profile.matvec_gflops},
                      {"memory_gb_per_s", n.resources.profile.memory_gb_per_s}}}};
  j["live"] = {{"rss_bytes", n.live.rss_bytes}};
  if (n.live.power_watts >= 0) j["live"]["power_watts"] = n.live.power_watts;
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Message message_from_json(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) fail_format("payload is not a JSON object");
  Message m;
  m.type = parse_type(get_string(j, "type", 32));
  m.seq = get_uint(j, "seq", UINT64_MAX);
  m.node.id = get_string(j, "id", 64);
  check_id(m.node.id);
  if (m.type == MessageType::kLeave) {
    if (j.contains("reason")) m.reason = get_string(j, "reason", 256);
    return m;
  }
  m.node.name = get_string(j, "name", 128);
  m.node.model = get_string(j, "model", 256);
  if (auto c = j.find("coordinating"); c != j.end()) {
    if (!c->is_boolean()) fail_format("field \"coordinating\" must be true or false");
    m.node.coordinating = c->get<bool>() && !m.node.model.empty();
  }
  const json& a = field(j, "address");
  if (!a.is_object()) fail_format("field \"address\" must be an object");
  m.node.address.host = get_string(a, "host", 255);
  m.node.address.api_port = get_port(a, "api_port");
  m.node.address.cluster_port = get_port(a, "cluster_port");
  const json& r = field(j, "resources");
  if (!r.is_object()) fail_format("field \"resources\" must be an object");
  m.node.resources.usable_memory_bytes = get_uint(r, "usable_memory_bytes", UINT64_MAX);
  m.node.resources.threads = static_cast<int>(get_uint(r, "threads", 1 << 16));
  m.node.resources.cpu_features = get_string(r, "cpu_features", 512);
  const json& p = field(r, "profile");
  if (!p.is_object()) fail_format("field \"profile\" must be an object");
  m.node.resources.profile.matvec_gflops = get_rate(p, "matvec_gflops");
  m.node.resources.profile.memory_gb_per_s = get_rate(p, "memory_gb_per_s");
  // Added later: optional, so that older nodes' messages still parse.
  if (r.contains("cpu")) m.node.resources.cpu = get_string(r, "cpu", 128);
  if (j.contains("live")) {
    const json& live = j["live"];
    if (!live.is_object()) fail_format("field \"live\" must be an object");
    if (live.contains("rss_bytes")) m.node.live.rss_bytes = get_uint(live, "rss_bytes", UINT64_MAX);
    if (live.contains("power_watts")) m.node.live.power_watts = get_rate(live, "power_watts");
  }
  return m;
}

namespace {
std::string mac_input(const std::string& nonce, std::int64_t ts_ms, std::string_view payload) {
  return fmt::format("herd/1\n{}\n{}\n{}", nonce, ts_ms, payload);
}
}  // namespace

std::string seal_with_nonce(const Message& message, const Secret& secret, std::int64_t ts_ms,
                            const std::string& nonce) {
  std::string payload = message_to_json(message);
  json envelope = {{"v", 1},
                   {"payload", payload},
                   {"nonce", nonce},
                   {"ts", ts_ms},
                   {"mac", to_hex(hmac_sha256(secret, mac_input(nonce, ts_ms, payload)))}};
  std::string out = envelope.dump(-1, ' ', false, json::error_handler_t::replace);
  if (out.size() > kMaxDatagramBytes)
    fail_argument("cluster message of {} bytes exceeds {}: shorten the node name or model",
                  out.size(), kMaxDatagramBytes);
  return out;
}

std::string seal(const Message& message, const Secret& secret, std::int64_t now_ms) {
  return seal_with_nonce(message, secret, now_ms, make_nonce());
}

namespace {
Opened reject(std::string_view from, std::string reason) {
  // The caller logs (the node at most once a second: a flood of bad datagrams is one line).
  log::debug("cluster: rejected message from {}: {}", from.empty() ? "?" : from, reason);
  Opened result;
  result.reason = std::move(reason);
  return result;
}
}  // namespace

Opened open(std::string_view datagram, const Secret& secret, ReplayGuard& guard,
            std::int64_t now_ms, std::string_view from) {
  if (datagram.size() > kMaxDatagramBytes)
    return reject(from, fmt::format("datagram of {} bytes is larger than {}", datagram.size(),
                                    kMaxDatagramBytes));
  json envelope = json::parse(datagram, nullptr, /*allow_exceptions=*/false);
  if (envelope.is_discarded() || !envelope.is_object()) return reject(from, "not a JSON envelope");
  auto v = envelope.find("v");
  if (v == envelope.end() || !v->is_number_integer() || v->get<std::int64_t>() != 1)
    return reject(from,
                  "unsupported envelope version (this node speaks v1): upgrade herd on every node");
  auto payload = envelope.find("payload");
  auto nonce = envelope.find("nonce");
  auto ts = envelope.find("ts");
  auto mac_hex = envelope.find("mac");
  if (payload == envelope.end() || !payload->is_string() || nonce == envelope.end() ||
      !nonce->is_string() || ts == envelope.end() || !ts->is_number_integer() ||
      mac_hex == envelope.end() || !mac_hex->is_string())
    return reject(from, "envelope lacks payload/nonce/ts/mac");
  const auto& nonce_text = nonce->get_ref<const std::string&>();
  if (nonce_text.size() < 16 || nonce_text.size() > 64)
    return reject(from, "nonce has a bad length");
  std::string mac;
  if (!from_hex(mac_hex->get_ref<const std::string&>(), mac) || mac.size() != kMacBytes)
    return reject(from, "mac is not 64 hex digits");
  const auto& payload_text = payload->get_ref<const std::string&>();
  std::int64_t ts_ms = ts->get<std::int64_t>();
  if (!constant_time_equal(mac, hmac_sha256(secret, mac_input(nonce_text, ts_ms, payload_text))))
    return reject(
        from, "bad MAC: the sender uses a different cluster secret, or the message was altered");
  std::string reason;
  if (!guard.accept(nonce_text, ts_ms, now_ms, reason)) return reject(from, reason);
  try {
    Opened result;
    result.message = message_from_json(payload_text);
    return result;
  } catch (const FormatError& e) {
    return reject(from, fmt::format("bad payload: {}", e.what()));
  }
}

}  // namespace herd::cluster
