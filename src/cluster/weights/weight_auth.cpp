#include "cluster/weights/weight_auth.h"

#include <charconv>
#include <chrono>

namespace herd::cluster {
namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

HttpAuth::HttpAuth(Secret secret, std::int64_t window_ms)
    : secret_(std::move(secret)), guard_(window_ms) {}

std::string HttpAuth::request_mac(std::string_view method, std::string_view target,
                                  std::string_view time, std::string_view nonce) const {
  std::string data = "herd-http-v1\n";
  data.append(method).append("\n").append(target).append("\n").append(time).append("\n").append(
      nonce);
  return to_hex(hmac_sha256(secret_, data));
}

httplib::Headers HttpAuth::sign(const std::string& method, const std::string& target) const {
  std::string time = std::to_string(now_ms());
  std::string nonce = make_nonce();
  std::string mac = request_mac(method, target, time, nonce);
  return {{kTimeHeader, time}, {kNonceHeader, nonce}, {kMacHeader, mac}};
}

bool HttpAuth::verify(const httplib::Request& request, std::string& reason) {
  std::string time = request.get_header_value(kTimeHeader);
  std::string nonce = request.get_header_value(kNonceHeader);
  std::string mac = request.get_header_value(kMacHeader);
  if (time.empty() || nonce.empty() || mac.empty()) {
    reason = "missing X-Herd-Time / X-Herd-Nonce / X-Herd-Mac headers";
    return false;
  }
  std::int64_t ts = 0;
  auto [ptr, ec] = std::from_chars(time.data(), time.data() + time.size(), ts);
  if (ec != std::errc{} || ptr != time.data() + time.size()) {
    reason = "X-Herd-Time is not an integer";
    return false;
  }
  if (!constant_time_equal(mac, request_mac(request.method, request.target, time, nonce))) {
    reason = "bad MAC: the peer does not hold this cluster's secret";
    return false;
  }
  std::lock_guard lock(mutex_);
  return guard_.accept(nonce, ts, now_ms(), reason);
}

RequestVerifier HttpAuth::verifier() {
  return [this](const httplib::Request& request, std::string& reason) {
    return verify(request, reason);
  };
}

void HttpAuth::sign_response(const httplib::Request& request, const std::string& body,
                             httplib::Response& response) const {
  std::string data = "herd-http-v1-response\n";
  data.append(request.get_header_value(kNonceHeader)).append("\n").append(body);
  response.set_header(kMacHeader, to_hex(hmac_sha256(secret_, data)));
}

bool HttpAuth::verify_response(std::string_view request_nonce, const std::string& body,
                               std::string_view mac_hex) const {
  std::string data = "herd-http-v1-response\n";
  data.append(request_nonce).append("\n").append(body);
  return constant_time_equal(mac_hex, to_hex(hmac_sha256(secret_, data)));
}

}  // namespace herd::cluster
