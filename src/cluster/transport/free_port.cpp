#include "cluster/transport/free_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <random>

#include "util/error.h"

namespace herd::cluster {

namespace {

// The first port the kernel hands out for bind(0) (Linux: ip_local_port_range; 32768 by default).
int ephemeral_low() {
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  if (range >> low && low > 12000) return low;
  return 32768;
}

bool bindable(int type, int port) {
  const int fd = socket(AF_INET, type, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

}  // namespace

int free_local_port() {
  static thread_local std::mt19937 rng(std::random_device{}());
  const int high = ephemeral_low();
  std::uniform_int_distribution<int> pick(high - 12000, high - 1);
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int port = pick(rng);
    if (bindable(SOCK_STREAM, port) && bindable(SOCK_DGRAM, port)) return port;
  }
  fail("no port on 127.0.0.1 is free for both TCP and UDP");
}

}  // namespace herd::cluster
