// Which network interface carries a given local IPv4 address. The data plane (UCX) would
// otherwise listen on every interface; a node bound to 127.0.0.1 must listen on loopback only.
#pragma once

#include <string>

namespace herd::cluster {

// The interface name ("lo", "eth0" ...) holding `host`, or "" when `host` is a wildcard
// (0.0.0.0, ::, empty) or held by no interface (then UCX picks, as before).
std::string interface_for_address(const std::string& host);

}  // namespace herd::cluster
