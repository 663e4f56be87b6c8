// Authentication of cluster control messages: every datagram carries an HMAC-SHA256 of its bytes
// keyed with the cluster secret, a random nonce and a timestamp. A node accepts a message only if
// the MAC matches (compared in constant time), the timestamp is within a window of its own clock,
// and the nonce has not been seen inside that window (replay protection). The protocol is written
// down in docs/cluster.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>

namespace herd::cluster {

// The shared cluster secret. Its bytes are the HMAC key; never logged.
class Secret {
 public:
  // Throws InvalidArgument when shorter than kMinBytes.
  explicit Secret(std::string bytes);
  static constexpr std::size_t kMinBytes = 16;
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

// Reads the secret from a file: surrounding whitespace (a trailing newline) is trimmed. Throws
// herd::Error when the file is missing, empty, shorter than 16 bytes after trimming, or readable
// or writable by group/others (like ssh's private keys: `chmod 600 FILE` fixes it).
Secret load_secret(const std::filesystem::path& path);

// 32 random bytes as 64 hex digits, for `herd secret` / first start. Throws on RNG failure.
std::string generate_secret_text();

constexpr std::size_t kMacBytes = 32;
// HMAC-SHA256(secret, data) as 32 raw bytes.
std::string hmac_sha256(const Secret& secret, std::string_view data);
// Compares without an early exit, so the time taken says nothing about where a forged MAC differs.
bool constant_time_equal(std::string_view a, std::string_view b);

// A fresh random nonce: 16 random bytes as 32 hex digits.
std::string make_nonce();

std::string to_hex(std::string_view bytes);
// Empty optional-like result: returns false on odd length or a non-hex digit.
bool from_hex(std::string_view hex, std::string& out);

// Remembers nonces seen within the window to reject replays. Time is passed in (milliseconds
// since the Unix epoch) so tests drive it. Memory is bounded: entries older than the window are
// forgotten (their timestamps are rejected anyway), and past max_entries the oldest go first.
class ReplayGuard {
 public:
  explicit ReplayGuard(std::int64_t window_ms = 30'000, std::size_t max_entries = 65'536);

  // Accepts (and remembers) the nonce if ts_ms is within +-window of now_ms and the nonce is new.
  // Otherwise returns false and sets `reason`.
  bool accept(std::string_view nonce, std::int64_t ts_ms, std::int64_t now_ms, std::string& reason);

  std::size_t size() const { return by_nonce_.size(); }
  std::int64_t window_ms() const { return window_ms_; }

 private:
  void forget_before(std::int64_t ts_ms);

  std::int64_t window_ms_;
  std::size_t max_entries_;
  std::map<std::string, std::int64_t, std::less<>> by_nonce_;
  std::set<std::pair<std::int64_t, std::string>> by_time_;
};

}  // namespace herd::cluster
