// A thin IPv4 UDP socket: the one place the control plane touches the BSD socket API, so
// discovery and link probing read as logic. Errors from setting up a socket are user-facing
// (wrong address, port in use) and throw herd::Error; a failed send to a peer is normal (the peer
// is down) and is reported as false.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace herd::cluster {

struct Endpoint {
  std::string host;
  std::uint16_t port = 0;
  std::string to_string() const { return host + ":" + std::to_string(port); }
  bool operator==(const Endpoint&) const = default;
};

// "HOST:PORT" (a name or IPv4 address; IPv6 is not supported yet). Throws InvalidArgument.
Endpoint parse_endpoint(std::string_view text);
// Resolves host to an IPv4 address. Throws herd::Error naming the host when it cannot.
sockaddr_in resolve(const Endpoint& endpoint);

struct Datagram {
  std::string bytes;
  Endpoint from;  // numeric address of the sender
};

class UdpSocket {
 public:
  // Binds to `local` (port 0 = any free port). reuse_port lets several processes on one host
  // share a multicast port.
  explicit UdpSocket(const Endpoint& local, bool reuse_port = false);
  ~UdpSocket();
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  int fd() const { return fd_; }
  Endpoint local() const;  // the bound address, with the real port

  // Joins an IPv4 multicast group on the interface that has address `interface_address`.
  void join_multicast(const std::string& group, const std::string& interface_address);
  // Outgoing multicast: which interface, how many router hops, and whether our own host hears it.
  void set_multicast_sending(const std::string& interface_address, int ttl, bool loopback);

  bool send_to(const sockaddr_in& to, std::string_view bytes);
  bool send_to(const Endpoint& to, std::string_view bytes);
  // Waits up to timeout_ms (0 = just poll) for one datagram.
  std::optional<Datagram> receive(int timeout_ms);

 private:
  int fd_ = -1;
};

// Waits on several sockets at once; returns the index of one that is readable, or -1 on timeout.
int wait_readable(const int* fds, int n, int timeout_ms);

}  // namespace herd::cluster
