#include "cluster/placement/link_probe.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "cluster/control/discovery.h"
#include "cluster/unicast_config.h"
#include "util/error.h"

namespace herd::cluster {
namespace {

TEST(LinkProbe, RttSummaryOfKnownSamples) {
  auto st = summarize_rtt({0.004, 0.001, 0.003, 0.002, 0.010});
  EXPECT_EQ(st.samples, 5);
  EXPECT_DOUBLE_EQ(st.min_s, 0.001);
  EXPECT_DOUBLE_EQ(st.max_s, 0.010);
  EXPECT_DOUBLE_EQ(st.median_s, 0.003);
  EXPECT_DOUBLE_EQ(st.p90_s, 0.010);
  EXPECT_DOUBLE_EQ(st.mean_s, 0.004);
  EXPECT_NEAR(st.jitter_s, std::sqrt((0 + 9 + 1 + 4 + 36) / 5.0) * 1e-3, 1e-12);
  EXPECT_DOUBLE_EQ(summarize_rtt({0.001, 0.003}).median_s, 0.002);
}

TEST(LinkProbe, RttSummaryRejectsEmptyAndInvalidSamples) {
  EXPECT_THROW(summarize_rtt({}), InvalidArgument);
  EXPECT_THROW(summarize_rtt({0.001, -1}), InvalidArgument);
  EXPECT_THROW(summarize_rtt({std::nan("")}), InvalidArgument);
}

TEST(LinkProbe, BandwidthFitRecoversLineFromExactSamples) {
  // 200 us fixed + 1 GB/s.
  std::vector<TransferSample> samples;
  for (std::uint64_t b : {1000, 10000, 50000}) samples.push_back({b, 200e-6 + b / 1e9});
  auto fit = fit_bandwidth(samples);
  EXPECT_NEAR(fit.bytes_per_s, 1e9, 1e3);
  EXPECT_NEAR(fit.fixed_s, 200e-6, 1e-12);
}

TEST(LinkProbe, BandwidthFitGivesZeroWhenSizeDoesNotMatter) {
  EXPECT_EQ(fit_bandwidth({{1000, 0.001}, {1000, 0.002}}).bytes_per_s, 0);
  EXPECT_EQ(fit_bandwidth({{1000, 0.002}, {60000, 0.001}}).bytes_per_s, 0);
  EXPECT_EQ(fit_bandwidth({{1000, 0.002}}).bytes_per_s, 0);
}

TEST(LinkProbe, MeasureLinkWithFakeTimingsAndLosses) {
  // 0.5 ms RTT, 100 MB/s, queueing noise up to +30% on some probes, every 7th probe lost.
  std::mt19937 rng(11);
  int calls = 0;
  RoundTrip fake = [&](std::size_t bytes) -> std::optional<double> {
    if (++calls % 7 == 0) return std::nullopt;
    double base = 0.0005 + static_cast<double>(bytes) / 1e8;
    return base * (1 + (rng() % 4 == 0 ? 0.3 * (rng() % 100) / 100.0 : 0));
  };
  auto m = measure_link(fake);
  EXPECT_GT(m.lost, 0);
  EXPECT_NEAR(m.rtt.median_s, 0.0005, 0.0001);
  EXPECT_NEAR(m.bandwidth.bytes_per_s, 1e8, 1e7);
  auto estimate = m.estimate();
  EXPECT_NEAR(estimate.latency_s, 0.00025, 0.00005);
}

TEST(LinkProbe, MeasureLinkFailsClearlyWhenPeerIsSilent) {
  RoundTrip dead = [](std::size_t) -> std::optional<double> { return std::nullopt; };
  EXPECT_THROW(measure_link(dead), Error);
}

TEST(LinkProbe, ReplyIsSmallEchoesSeqAndIgnoresOtherDatagrams) {
  std::string request = "HPRQ";
  request += std::string("\x05\x00\x00\x00", 4);
  request.resize(5000, 'x');
  auto reply = probe_reply(request);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->size(), 12u);
  EXPECT_EQ(reply->substr(0, 8), std::string("HPRS\x05\x00\x00\x00", 8));
  EXPECT_FALSE(probe_reply("{\"v\":1}"));
  EXPECT_FALSE(probe_reply("HPRQ"));  // too short for a sequence number
}

// A real probe over UDP on 127.0.0.1 against a responder thread; only sanity is asserted.
TEST(LinkProbe, UdpProbeAgainstLoopbackResponder) {
  Discovery responder(unicast_config({"127.0.0.1", 0}));
  std::atomic<bool> stop{false};
  std::thread thread([&] {
    while (!stop) {
      if (auto d = responder.receive(20))
        if (auto reply = probe_reply(d->bytes)) responder.send_to(d->from, *reply);
    }
  });
  UdpProber prober({"127.0.0.1", 0}, responder.local(), 1000);
  ProbePlan plan;
  plan.rtt_probes = 5;
  plan.per_size = 1;
  auto m = measure_link([&](std::size_t n) { return prober.round_trip(n); }, plan);
  stop = true;
  thread.join();
  EXPECT_EQ(m.rtt.samples + m.lost, 5);
  EXPECT_GT(m.rtt.samples, 0);
  EXPECT_GT(m.rtt.median_s, 0);
  EXPECT_LT(m.rtt.median_s, 1.0);
}

}  // namespace
}  // namespace herd::cluster
