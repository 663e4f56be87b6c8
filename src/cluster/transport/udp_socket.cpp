#include "cluster/transport/udp_socket.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "util/error.h"

namespace herd::cluster {

Endpoint parse_endpoint(std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size())
    fail_argument("peer \"{}\" is not HOST:PORT (e.g. 192.168.1.20:7070)", text);
  std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535)
    fail_argument("peer \"{}\": port must be a number from 1 to 65535", text);
  return {std::string(text.substr(0, colon)), static_cast<std::uint16_t>(port)};
}

sockaddr_in resolve(const Endpoint& endpoint) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(endpoint.port);
  if (inet_pton(AF_INET, endpoint.host.c_str(), &addr.sin_addr) == 1) return addr;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  int rc = getaddrinfo(endpoint.host.c_str(), nullptr, &hints, &found);
  if (rc != 0 || found == nullptr)
    fail("cannot resolve host \"{}\": {} — check the name or use an IPv4 address", endpoint.host,
         gai_strerror(rc));
  addr.sin_addr = reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr;
  freeaddrinfo(found);
  return addr;
}

UdpSocket::UdpSocket(const Endpoint& local, bool reuse_port) {
  sockaddr_in addr = resolve(local);
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) fail("cannot create a UDP socket: {}", std::strerror(errno));
  int one = 1;
  if (reuse_port) {
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  }
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    ::close(fd_);
    fd_ = -1;
    fail("cannot listen on UDP {}: {} — pick another port or an address this machine has",
         local.to_string(), std::strerror(err));
  }
}

UdpSocket::~UdpSocket() {
  if (fd_ >= 0) ::close(fd_);
}

Endpoint UdpSocket::local() const {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &addr.sin_addr, text, sizeof(text));
  return {text, ntohs(addr.sin_port)};
}

namespace {
in_addr ipv4(const std::string& text, const char* what) {
  in_addr a{};
  if (inet_pton(AF_INET, text.c_str(), &a) != 1)
    fail_argument("{} \"{}\" is not an IPv4 address", what, text);
  return a;
}
}  // namespace

void UdpSocket::join_multicast(const std::string& group, const std::string& interface_address) {
  ip_mreq request{};
  request.imr_multiaddr = ipv4(group, "multicast group");
  request.imr_interface = ipv4(interface_address, "multicast interface");
  if (::setsockopt(fd_, IPPROTO_IP, IP_ADD_MEMBERSHIP, &request, sizeof(request)) != 0)
    fail(
        "cannot join multicast group {} on interface {}: {} — use --peers instead where multicast "
        "is blocked",
        group, interface_address, std::strerror(errno));
}

void UdpSocket::set_multicast_sending(const std::string& interface_address, int ttl,
                                      bool loopback) {
  in_addr iface = ipv4(interface_address, "multicast interface");
  unsigned char ttl_byte = static_cast<unsigned char>(ttl), loop = loopback ? 1 : 0;
  if (::setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_IF, &iface, sizeof(iface)) != 0 ||
      ::setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_TTL, &ttl_byte, sizeof(ttl_byte)) != 0 ||
      ::setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)) != 0)
    fail("cannot send multicast from {}: {}", interface_address, std::strerror(errno));
}

bool UdpSocket::send_to(const sockaddr_in& to, std::string_view bytes) {
  auto sent = ::sendto(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL,
                       reinterpret_cast<const sockaddr*>(&to), sizeof(to));
  return sent == static_cast<ssize_t>(bytes.size());
}

bool UdpSocket::send_to(const Endpoint& to, std::string_view bytes) {
  try {
    return send_to(resolve(to), bytes);
  } catch (const Error&) {
    return false;  // a peer whose name does not resolve now is a peer that is down
  }
}

std::optional<Datagram> UdpSocket::receive(int timeout_ms) {
  if (wait_readable(&fd_, 1, timeout_ms) < 0) return std::nullopt;
  // The largest UDP payload: link probes are up to 60 KB; callers reject what they cannot use
  // (open() refuses envelopes over kMaxDatagramBytes).
  std::string buffer(65536, '\0');
  sockaddr_in from{};
  socklen_t len = sizeof(from);
  auto n = ::recvfrom(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT,
                      reinterpret_cast<sockaddr*>(&from), &len);
  if (n < 0) return std::nullopt;
  buffer.resize(static_cast<std::size_t>(n));
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &from.sin_addr, text, sizeof(text));
  return Datagram{std::move(buffer), {text, ntohs(from.sin_port)}};
}

int wait_readable(const int* fds, int n, int timeout_ms) {
  pollfd polls[8];
  HERD_CHECK(n > 0 && n <= 8);
  for (int i = 0; i < n; ++i) polls[i] = {fds[i], POLLIN, 0};
  int rc;
  do rc = ::poll(polls, static_cast<nfds_t>(n), timeout_ms);
  while (rc < 0 && errno == EINTR);
  if (rc <= 0) return -1;
  for (int i = 0; i < n; ++i)
    if (polls[i].revents & (POLLIN | POLLERR)) return i;
  return -1;
}

}  // namespace herd::cluster
