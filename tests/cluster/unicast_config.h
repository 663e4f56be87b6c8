// A DiscoveryConfig that binds unicast to `bind` and knows `peers`, every other field at its
// default: named, so that tests need not spell the aggregate (which GCC flags with
// -Wmissing-field-initializers).
#pragma once

#include <utility>
#include <vector>

#include "cluster/control/discovery.h"

namespace herd::cluster {

inline DiscoveryConfig unicast_config(Endpoint bind, std::vector<Endpoint> peers = {}) {
  DiscoveryConfig config;
  config.bind = std::move(bind);
  config.peers = std::move(peers);
  return config;
}

}  // namespace herd::cluster
