// Prints the median round trip of a 16 KiB message on 127.0.0.1: UCX (as configured; set UCX_TLS
// to compare transports) against a plain TCP socket. Asserts only that the bytes come back
// intact; speed is reported, never asserted.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "cluster/transport/ucx_transport.h"

namespace herd::cluster {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kBytes = 16 * 1024;
constexpr int kWarmup = 200;
constexpr int kRounds = 2000;

double median_us(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

TEST(TransportLatency, Ucx16KiBRoundTrip) {
  UcxTransport a, b;
  const PeerId a_to_b = a.connect(b.local_address(), "b");
  const PeerId b_to_a = b.connect(a.local_address(), "a");
  std::thread echo([&] {
    for (int i = 0; i < kWarmup + kRounds; ++i) {
      auto m = b.receive(1, b_to_a, 10s);
      b.send(b_to_a, 2, m.bytes, 10s);
    }
  });
  std::vector<std::uint8_t> message(kBytes);
  for (std::size_t i = 0; i < kBytes; ++i) message[i] = static_cast<std::uint8_t>(i * 7);
  std::vector<double> samples;
  bool intact = true;
  for (int i = 0; i < kWarmup + kRounds; ++i) {
    const auto start = Clock::now();
    a.send(a_to_b, 1, message, 10s);
    auto reply = a.receive(2, a_to_b, 10s);
    const auto end = Clock::now();
    intact = intact && reply.bytes == message;
    if (i >= kWarmup)
      samples.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
  echo.join();
  EXPECT_TRUE(intact);
  const char* tls = std::getenv("UCX_TLS");
  std::printf("UCX (UCX_TLS=%s) 16 KiB round trip: median %.1f us over %d rounds\n",
              tls ? tls : "herd default: tcp", median_us(samples), kRounds);
}

bool write_all(int fd, const std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_all(int fd, std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

TEST(TransportLatency, RawTcp16KiBRoundTrip) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;  // a free port, chosen by the kernel
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int one = 1;
  std::thread echo([&] {
    const int fd = ::accept(listener, nullptr, nullptr);
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::vector<std::uint8_t> buffer(kBytes);
    for (int i = 0; i < kWarmup + kRounds; ++i) {
      if (!read_all(fd, buffer.data(), kBytes) || !write_all(fd, buffer.data(), kBytes)) break;
    }
    ::close(fd);
  });
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::vector<std::uint8_t> message(kBytes), reply(kBytes);
  for (std::size_t i = 0; i < kBytes; ++i) message[i] = static_cast<std::uint8_t>(i * 7);
  std::vector<double> samples;
  bool intact = true;
  for (int i = 0; i < kWarmup + kRounds; ++i) {
    const auto start = Clock::now();
    intact = intact && write_all(fd, message.data(), kBytes) && read_all(fd, reply.data(), kBytes);
    const auto end = Clock::now();
    intact = intact && reply == message;
    if (i >= kWarmup)
      samples.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
  ::close(fd);
  echo.join();
  ::close(listener);
  EXPECT_TRUE(intact);
  std::printf("raw TCP 16 KiB round trip: median %.1f us over %d rounds\n", median_us(samples),
              kRounds);
}

}  // namespace
}  // namespace herd::cluster
