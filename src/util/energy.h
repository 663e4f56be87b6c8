// Energy this machine's CPU packages used, from Linux RAPL counters under /sys/class/powercap
// (intel-rapl:N/energy_uj; AMD Zen exposes the same names). Where there are none, or they are
// not readable (since Linux 5.10 only root may read them), the meter says "not available" and
// why: the dashboard and /metrics then show no number rather than a made-up one. macOS
// (powermetrics needs root) is not read.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace herd {

class EnergyMeter {
 public:
  // `root` is the powercap directory (tests pass a fake tree).
  explicit EnergyMeter(std::string root = "/sys/class/powercap");

  bool available() const { return !domains_.empty(); }
  // Why there is no reading ("" when available).
  const std::string& unavailable_reason() const { return reason_; }
  // Joules used by all packages since construction, counter wrap-around included; nullopt when
  // not available. Call at least once per wrap period (minutes at full load) to see every wrap.
  std::optional<double> joules();

 private:
  struct Domain {
    std::string energy_path;
    std::uint64_t range_uj = 0;  // the counter wraps to 0 after this
    std::uint64_t last_uj = 0;
    double total_j = 0;
  };
  std::vector<Domain> domains_;
  std::string reason_;
};

// Watts averaged over the last interval of at least `min_interval`, from an EnergyMeter; safe
// to call from several threads.
class PowerSampler {
 public:
  using Clock = std::chrono::steady_clock;
  explicit PowerSampler(std::string root = "/sys/class/powercap",
                        Clock::duration min_interval = std::chrono::milliseconds(900));

  bool available() const { return meter_.available(); }
  const std::string& unavailable_reason() const { return meter_.unavailable_reason(); }
  // The last interval's average power; nullopt until two samples lie `min_interval` apart, or
  // when not available.
  std::optional<double> watts(Clock::time_point now = Clock::now());
  // Joules since construction (nullopt when not available).
  std::optional<double> joules();

 private:
  std::mutex mutex_;
  EnergyMeter meter_;
  Clock::duration min_interval_;
  std::optional<std::pair<Clock::time_point, double>> last_;
  std::optional<double> watts_;
};

}  // namespace herd
