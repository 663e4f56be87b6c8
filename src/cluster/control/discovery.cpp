#include "cluster/control/discovery.h"

#include <algorithm>

#include "util/error.h"
#include "util/log.h"

namespace herd::cluster {

Discovery::Discovery(DiscoveryConfig config) : config_(std::move(config)) {
  unicast_ = std::make_unique<UdpSocket>(config_.bind);
  if (!config_.multicast) return;
  std::string iface =
      config_.multicast_interface.empty() ? config_.bind.host : config_.multicast_interface;
  if (iface == "0.0.0.0")
    fail_argument(
        "multicast needs an interface address: bind to one, or set the multicast interface");
  // Bound to the group address itself, so this socket receives that group's datagrams and
  // nothing sent to the host's other addresses on the same port.
  group_ =
      std::make_unique<UdpSocket>(Endpoint{config_.multicast_group, config_.multicast_port}, true);
  group_->join_multicast(config_.multicast_group, iface);
  unicast_->set_multicast_sending(iface, config_.multicast_ttl, config_.multicast_loopback);
  group_address_ = resolve({config_.multicast_group, config_.multicast_port});
}

void Discovery::add_peer(const Endpoint& peer) {
  if (std::find(config_.peers.begin(), config_.peers.end(), peer) == config_.peers.end())
    config_.peers.push_back(peer);
}

int Discovery::broadcast(std::string_view datagram) {
  int sent = 0;
  for (const auto& peer : config_.peers) {
    if (unicast_->send_to(peer, datagram))
      ++sent;
    else
      log::debug("discovery: send to {} failed", peer.to_string());
  }
  if (group_address_ && unicast_->send_to(*group_address_, datagram)) ++sent;
  return sent;
}

std::optional<Datagram> Discovery::receive(int timeout_ms) {
  int fds[2] = {unicast_->fd(), group_ ? group_->fd() : -1};
  int ready = wait_readable(fds, group_ ? 2 : 1, timeout_ms);
  if (ready < 0) return std::nullopt;
  return (ready == 0 ? unicast_ : group_)->receive(0);
}

}  // namespace herd::cluster
