// Finding the other `herd serve` nodes: UDP multicast on the local network (group 239.x, TTL 1 so
// it never leaves the subnet) and/or a static --peers list sent to by unicast. This class only
// moves datagrams; what they say (signed Announce/Join/Heartbeat/Leave) is messages.h, and what
// they mean is membership.h. Sockets are bound only to the addresses configured: nothing listens
// on 0.0.0.0 unless the user asked for it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cluster/transport/udp_socket.h"

namespace herd::cluster {

struct DiscoveryConfig {
  Endpoint bind{"127.0.0.1", 0};  // unicast socket: replies and static peers reach us here
  std::vector<Endpoint> peers;    // --peers HOST:PORT,...
  bool multicast = false;
  std::string multicast_group = "239.255.72.68";  // administratively scoped ("local") range
  std::uint16_t multicast_port = 7946;
  // Address of the interface that sends and joins the group; empty = the bind address (which
  // must then be a specific one, not 0.0.0.0).
  std::string multicast_interface;
  int multicast_ttl = 1;
  bool multicast_loopback =
      true;  // other nodes on this same host hear us (tests, several nodes per box)
};

class Discovery {
 public:
  // Opens and binds the sockets. Throws herd::Error naming the address on failure.
  explicit Discovery(DiscoveryConfig config);

  Endpoint local() const { return unicast_->local(); }
  const DiscoveryConfig& config() const { return config_; }

  // Adds a unicast destination (e.g. one learned from a multicast announcement); no duplicates.
  void add_peer(const Endpoint& peer);
  const std::vector<Endpoint>& peers() const { return config_.peers; }

  // Sends to every static peer and to the multicast group. Returns how many sends the kernel
  // accepted; a peer that is down is not an error.
  int broadcast(std::string_view datagram);
  bool send_to(const Endpoint& to, std::string_view datagram) {
    return unicast_->send_to(to, datagram);
  }

  // The next datagram from either socket, waiting up to timeout_ms.
  std::optional<Datagram> receive(int timeout_ms);

 private:
  DiscoveryConfig config_;
  std::unique_ptr<UdpSocket> unicast_;
  std::unique_ptr<UdpSocket> group_;  // bound to the multicast group's port, when enabled
  std::optional<sockaddr_in> group_address_;
};

}  // namespace herd::cluster
