#include "util/energy.h"

#include <filesystem>
#include <fstream>

namespace herd {

namespace {

std::optional<std::uint64_t> read_number(const std::string& path) {
  std::ifstream in(path);
  std::uint64_t v = 0;
  if (!(in >> v)) return std::nullopt;
  return v;
}

// Package domains only ("intel-rapl:0", not the sub-zones "intel-rapl:0:0" they already count).
bool is_package_zone(const std::string& name) {
  constexpr std::string_view prefix = "intel-rapl:";
  if (name.rfind(prefix, 0) != 0) return false;
  return name.find(':', prefix.size()) == std::string::npos;
}

}  // namespace

EnergyMeter::EnergyMeter(std::string root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    reason_ = "no RAPL energy counters on this machine (" + root + " is absent)";
    return;
  }
  bool unreadable = false;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (!is_package_zone(name)) continue;
    Domain d;
    d.energy_path = (entry.path() / "energy_uj").string();
    const auto now = read_number(d.energy_path);
    const auto range = read_number((entry.path() / "max_energy_range_uj").string());
    if (!now || !range || *range == 0) {
      unreadable = true;
      continue;
    }
    d.last_uj = *now;
    d.range_uj = *range;
    domains_.push_back(std::move(d));
  }
  if (domains_.empty())
    reason_ = unreadable ? "the RAPL energy counters are not readable (run as root, or "
                           "chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj)"
                         : "no RAPL package domains under " + root;
}

std::optional<double> EnergyMeter::joules() {
  if (domains_.empty()) return std::nullopt;
  double total = 0;
  for (auto& d : domains_) {
    if (const auto now = read_number(d.energy_path)) {
      const std::uint64_t delta = *now >= d.last_uj ? *now - d.last_uj : d.range_uj - d.last_uj + *now;
      d.total_j += static_cast<double>(delta) * 1e-6;
      d.last_uj = *now;
    }
    total += d.total_j;
  }
  return total;
}

PowerSampler::PowerSampler(std::string root, Clock::duration min_interval)
    : meter_(std::move(root)), min_interval_(min_interval) {}

std::optional<double> PowerSampler::watts(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (!meter_.available()) return std::nullopt;
  if (last_ && now - last_->first < min_interval_) return watts_;
  const auto j = meter_.joules();
  if (!j) return std::nullopt;
  if (last_) {
    const double seconds = std::chrono::duration<double>(now - last_->first).count();
    watts_ = (*j - last_->second) / seconds;
  }
  last_ = {now, *j};
  return watts_;
}

std::optional<double> PowerSampler::joules() {
  std::lock_guard lock(mutex_);
  return meter_.joules();
}

}  // namespace herd
