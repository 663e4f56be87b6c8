// How good the link to a peer is: round-trip time and bandwidth, fed to placement as each
// member's LinkEstimate. The statistics are pure functions (tested with made-up timings); the
// probe itself is a request/response over UDP that any node answers with probe_reply().
//
// Wire format (not JSON, so the receive loop tells it apart from envelopes by the first bytes):
//   request: "HPRQ" u32 seq, then any padding (the padding is what measures bandwidth)
//   reply:   "HPRS" u32 seq u32 bytes-received
// The reply is always 12 bytes, never larger than the request, so a forged source address
// cannot turn a node into an amplifier. Probes are unauthenticated: they reveal nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/placement/placement.h"
#include "cluster/transport/udp_socket.h"

namespace herd::cluster {

struct RttStats {
  int samples = 0;
  double min_s = 0, median_s = 0, p90_s = 0, mean_s = 0, max_s = 0;
  double jitter_s = 0;  // standard deviation
};

// Throws InvalidArgument on no samples or a negative/non-finite one.
RttStats summarize_rtt(std::vector<double> seconds);

struct TransferSample {
  std::uint64_t bytes = 0;  // request size
  double seconds = 0;       // its round-trip time
};

struct BandwidthFit {
  double bytes_per_s = 0;  // 0 when time does not grow with size (too few or too noisy samples)
  double fixed_s = 0;      // the size-independent part of a round trip
};

// Least-squares fit of seconds = fixed + bytes / bandwidth over samples of several sizes.
BandwidthFit fit_bandwidth(const std::vector<TransferSample>& samples);

struct ProbePlan {
  int rtt_probes = 10;  // small requests for the RTT figure
  std::vector<std::size_t> sizes = {1024, 4096, 16384, 32768, 60000};
  int per_size = 3;  // each size is sent this many times; the fastest counts (least queueing)
};

struct LinkMeasurement {
  RttStats rtt;
  BandwidthFit bandwidth;
  int lost = 0;
  LinkEstimate estimate() const;  // for placement: one-way latency = median RTT / 2
};

// One probe of `request_bytes`: returns its round-trip seconds, or nothing when lost.
using RoundTrip = std::function<std::optional<double>(std::size_t request_bytes)>;

// Runs the plan through `round_trip` and summarises. Throws herd::Error if every RTT probe is lost.
LinkMeasurement measure_link(const RoundTrip& round_trip, const ProbePlan& plan = {});

bool is_probe_request(std::string_view datagram);
// The reply to a probe request; nothing for any other datagram.
std::optional<std::string> probe_reply(std::string_view datagram);

// A RoundTrip over UDP to a peer that answers probes. Owns its socket (bound to `local`).
class UdpProber {
 public:
  UdpProber(const Endpoint& local, const Endpoint& peer, int timeout_ms = 500);
  std::optional<double> round_trip(std::size_t request_bytes);

 private:
  UdpSocket socket_;
  sockaddr_in peer_;
  int timeout_ms_;
  std::uint32_t seq_ = 0;
};

}  // namespace herd::cluster
