#include "cluster/transport/interface_address.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

namespace herd::cluster {

std::string interface_for_address(const std::string& host) {
  in_addr wanted{};
  if (host.empty() || ::inet_pton(AF_INET, host.c_str(), &wanted) != 1) return {};
  if (wanted.s_addr == htonl(INADDR_ANY)) return {};
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return {};
  std::string found;
  for (ifaddrs* it = list; it; it = it->ifa_next) {
    if (!it->ifa_addr || it->ifa_addr->sa_family != AF_INET) continue;
    auto* sin = reinterpret_cast<sockaddr_in*>(it->ifa_addr);
    if (sin->sin_addr.s_addr == wanted.s_addr) {
      found = it->ifa_name;
      break;
    }
  }
  ::freeifaddrs(list);
  return found;
}

}  // namespace herd::cluster
