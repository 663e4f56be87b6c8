// A histogram of durations with fixed upper bounds (Prometheus' cumulative buckets), plus the
// quantiles people ask for, estimated from the buckets. Not thread-safe: its owner locks.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace herd {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size(), 0) {}

  void add(double value) {
    for (std::size_t i = 0; i < bounds_.size(); ++i) {
      if (value <= bounds_[i]) ++counts_[i];
    }
    ++count_;
    sum_ += value;
  }
  const std::vector<double>& bounds() const { return bounds_; }
  // Observations <= bounds()[i] (cumulative, as Prometheus exposes them).
  const std::vector<std::uint64_t>& cumulative() const { return counts_; }
  std::uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  // The smallest bound with at least q of the observations at or below it (0 when empty; the
  // last bound when they lie beyond it).
  double quantile_bound(double q) const {
    if (count_ == 0) return 0;
    for (std::size_t i = 0; i < bounds_.size(); ++i) {
      if (static_cast<double>(counts_[i]) >= q * static_cast<double>(count_)) return bounds_[i];
    }
    return bounds_.empty() ? 0 : bounds_.back();
  }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

}  // namespace herd
