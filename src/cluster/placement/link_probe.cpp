#include "cluster/placement/link_probe.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>

#include "util/error.h"

namespace herd::cluster {

RttStats summarize_rtt(std::vector<double> seconds) {
  if (seconds.empty()) fail_argument("no round-trip samples to summarise");
  for (double s : seconds)
    if (!std::isfinite(s) || s < 0)
      fail_argument("round-trip sample {} is not a valid duration", s);
  std::sort(seconds.begin(), seconds.end());
  const auto n = seconds.size();
  RttStats st;
  st.samples = static_cast<int>(n);
  st.min_s = seconds.front();
  st.max_s = seconds.back();
  st.median_s = n % 2 ? seconds[n / 2] : 0.5 * (seconds[n / 2 - 1] + seconds[n / 2]);
  st.p90_s = seconds[std::min(
      n - 1, static_cast<std::size_t>(std::ceil(0.9 * static_cast<double>(n))) - 1)];
  st.mean_s = std::accumulate(seconds.begin(), seconds.end(), 0.0) / static_cast<double>(n);
  double var = 0;
  for (double s : seconds) var += (s - st.mean_s) * (s - st.mean_s);
  st.jitter_s = std::sqrt(var / static_cast<double>(n));
  return st;
}

BandwidthFit fit_bandwidth(const std::vector<TransferSample>& samples) {
  BandwidthFit fit;
  if (samples.size() < 2) return fit;
  double n = static_cast<double>(samples.size()), sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& s : samples) {
    double x = static_cast<double>(s.bytes);
    sx += x;
    sy += s.seconds;
    sxx += x * x;
    sxy += x * s.seconds;
  }
  double denom = n * sxx - sx * sx;
  if (denom <= 0) return fit;                  // all the same size: nothing to fit
  double slope = (n * sxy - sx * sy) / denom;  // seconds per byte
  fit.fixed_s = std::max(0.0, (sy - slope * sx) / n);
  if (slope > 0) fit.bytes_per_s = 1.0 / slope;
  return fit;
}

LinkEstimate LinkMeasurement::estimate() const {
  return {rtt.median_s / 2, bandwidth.bytes_per_s};
}

LinkMeasurement measure_link(const RoundTrip& round_trip, const ProbePlan& plan) {
  LinkMeasurement m;
  std::vector<double> rtts;
  for (int i = 0; i < plan.rtt_probes; ++i) {
    if (auto t = round_trip(16))
      rtts.push_back(*t);
    else
      ++m.lost;
  }
  if (rtts.empty())
    fail("peer did not answer any of {} link probes: is it running, and is its port open?",
         plan.rtt_probes);
  m.rtt = summarize_rtt(rtts);
  std::vector<TransferSample> samples;
  for (auto size : plan.sizes) {
    std::optional<double> best;
    for (int i = 0; i < plan.per_size; ++i) {
      auto t = round_trip(size);
      if (!t) {
        ++m.lost;
        continue;
      }
      if (!best || *t < *best) best = t;
    }
    if (best) samples.push_back({size, *best});
  }
  m.bandwidth = fit_bandwidth(samples);
  return m;
}

namespace {
constexpr char kRequestMagic[4] = {'H', 'P', 'R', 'Q'};
constexpr char kReplyMagic[4] = {'H', 'P', 'R', 'S'};

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
std::uint32_t get_u32(std::string_view in, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  return v;
}
}  // namespace

bool is_probe_request(std::string_view d) {
  return d.size() >= 8 && std::memcmp(d.data(), kRequestMagic, 4) == 0;
}

std::optional<std::string> probe_reply(std::string_view d) {
  if (!is_probe_request(d)) return std::nullopt;
  std::string reply(kReplyMagic, 4);
  put_u32(reply, get_u32(d, 4));
  put_u32(reply, static_cast<std::uint32_t>(d.size()));
  return reply;
}

UdpProber::UdpProber(const Endpoint& local, const Endpoint& peer, int timeout_ms)
    : socket_(local), peer_(resolve(peer)), timeout_ms_(timeout_ms) {}

std::optional<double> UdpProber::round_trip(std::size_t request_bytes) {
  std::uint32_t seq = ++seq_;
  std::string request(kRequestMagic, 4);
  put_u32(request, seq);
  request.resize(std::max<std::size_t>(request_bytes, 8), '\0');
  auto start = std::chrono::steady_clock::now();
  if (!socket_.send_to(peer_, request)) return std::nullopt;
  auto deadline = start + std::chrono::milliseconds(timeout_ms_);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) return std::nullopt;
    auto reply = socket_.receive(static_cast<int>(left.count()) + 1);
    if (!reply) return std::nullopt;
    const auto& b = reply->bytes;
    // Late replies to earlier (timed-out) probes are skipped by their sequence number.
    if (b.size() == 12 && std::memcmp(b.data(), kReplyMagic, 4) == 0 && get_u32(b, 4) == seq)
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
}

}  // namespace herd::cluster
