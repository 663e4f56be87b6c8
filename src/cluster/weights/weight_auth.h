// HMAC authentication of the weight-transfer HTTP requests, built on auth.h. A request carries
//   X-Herd-Time: milliseconds since the Unix epoch
//   X-Herd-Nonce: 32 random hex digits
//   X-Herd-Mac: hex HMAC-SHA256(secret, "herd-http-v1\n" METHOD "\n" TARGET "\n" TIME "\n" NONCE)
// where TARGET is the request target (path and query) as sent. The server accepts a request once,
// within the time window (ReplayGuard). Responses that the client must trust (the manifest, which
// carries every tensor's SHA-256) carry X-Herd-Mac = hex HMAC over "herd-http-v1-response\n"
// NONCE "\n" BODY, bound to the request's nonce so an old response cannot be replayed.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "cluster/control/auth.h"

namespace herd::cluster {

// Decides whether a request may be served; fills `reason` when it may not.
using RequestVerifier = std::function<bool(const httplib::Request&, std::string& reason)>;

class HttpAuth {
 public:
  explicit HttpAuth(Secret secret, std::int64_t window_ms = 30'000);

  // Headers for a request to `target` (e.g. "/v1/weights/abc/manifest?first=0&last=2").
  httplib::Headers sign(const std::string& method, const std::string& target) const;
  // Thread-safe: checks the MAC, the time window and that the nonce is new.
  bool verify(const httplib::Request& request, std::string& reason);
  // A verifier for WeightServer that calls verify() on this object (which must outlive it).
  RequestVerifier verifier();

  // Sets X-Herd-Mac on `response` for `body`, bound to the nonce of `request`.
  void sign_response(const httplib::Request& request, const std::string& body,
                     httplib::Response& response) const;
  // Checks a response MAC for the nonce the request was sent with.
  bool verify_response(std::string_view request_nonce, const std::string& body,
                       std::string_view mac_hex) const;

  static constexpr const char* kTimeHeader = "X-Herd-Time";
  static constexpr const char* kNonceHeader = "X-Herd-Nonce";
  static constexpr const char* kMacHeader = "X-Herd-Mac";

 private:
  std::string request_mac(std::string_view method, std::string_view target, std::string_view time,
                          std::string_view nonce) const;

  Secret secret_;
  std::mutex mutex_;
  ReplayGuard guard_;
};

}  // namespace herd::cluster
