#include "cluster/control/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "util/error.h"

namespace herd::cluster {

Secret::Secret(std::string bytes) : bytes_(std::move(bytes)) {
  if (bytes_.size() < kMinBytes)
    fail_argument("cluster secret has {} bytes, needs at least {}: generate one with `herd secret`",
                  bytes_.size(), kMinBytes);
}

Secret load_secret(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    fail(
        "cluster secret file {} not found: create it (e.g. `herd secret > {}`) and copy it to "
        "every node",
        path.string(), path.string());
  if (!S_ISREG(st.st_mode)) fail("cluster secret {} is not a regular file", path.string());
  if ((st.st_mode & 077) != 0)
    fail("cluster secret {} is accessible by group or others (mode {:o}): run `chmod 600 {}`",
         path.string(), st.st_mode & 0777, path.string());
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read cluster secret {}: check its permissions", path.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  const char* space = " \t\r\n";
  auto first = text.find_first_not_of(space);
  if (first == std::string::npos)
    fail("cluster secret file {} is empty: put a random secret in it", path.string());
  auto last = text.find_last_not_of(space);
  text = text.substr(first, last - first + 1);
  if (text.size() < Secret::kMinBytes)
    fail("cluster secret in {} is only {} bytes: use at least {} (e.g. `herd secret`)",
         path.string(), text.size(), Secret::kMinBytes);
  return Secret(std::move(text));
}

namespace {
std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
    fail("the system random number generator failed");
  return out;
}
}  // namespace

std::string generate_secret_text() {
  return to_hex(random_bytes(32));
}

std::string make_nonce() {
  return to_hex(random_bytes(16));
}

std::string hmac_sha256(const Secret& secret, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  const auto& key = secret.bytes();
  auto* ok = HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                  reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &mac_len);
  HERD_CHECK(ok != nullptr && mac_len == kMacBytes);
  return std::string(reinterpret_cast<const char*>(mac), mac_len);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;  // lengths are public (a MAC is always 32 bytes)
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string to_hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

bool from_hex(std::string_view hex, std::string& out) {
  if (hex.size() % 2 != 0) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out.clear();
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

ReplayGuard::ReplayGuard(std::int64_t window_ms, std::size_t max_entries)
    : window_ms_(window_ms), max_entries_(max_entries) {
  HERD_CHECK(window_ms > 0 && max_entries > 0);
}

void ReplayGuard::forget_before(std::int64_t ts_ms) {
  while (!by_time_.empty() && by_time_.begin()->first < ts_ms) {
    by_nonce_.erase(by_time_.begin()->second);
    by_time_.erase(by_time_.begin());
  }
}

bool ReplayGuard::accept(std::string_view nonce, std::int64_t ts_ms, std::int64_t now_ms,
                         std::string& reason) {
  if (ts_ms < now_ms - window_ms_ || ts_ms > now_ms + window_ms_) {
    reason = fmt::format(
        "timestamp is {:.0f} ms away from this node's clock (window {} ms): replayed, or the "
        "clocks disagree — synchronise them with NTP",
        // In double: a forged ts near INT64_MIN must not overflow the subtraction.
        static_cast<double>(ts_ms) - static_cast<double>(now_ms), window_ms_);
    return false;
  }
  forget_before(now_ms - window_ms_);
  if (by_nonce_.find(nonce) != by_nonce_.end()) {
    reason = "nonce already seen: replayed message";
    return false;
  }
  while (by_nonce_.size() >= max_entries_) {
    by_nonce_.erase(by_time_.begin()->second);
    by_time_.erase(by_time_.begin());
  }
  by_nonce_.emplace(std::string(nonce), ts_ms);
  by_time_.emplace(ts_ms, std::string(nonce));
  return true;
}

}  // namespace herd::cluster
