// Counts per whole second over the last minutes (e.g. tokens generated), for "tokens/s now" and
// the dashboard's chart. Not thread-safe: its owner locks.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

namespace herd {

class RateHistory {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RateHistory(int seconds = 60) : counts_(static_cast<std::size_t>(seconds), 0) {}

  void add(Clock::time_point t, std::uint64_t n) {
    const std::int64_t s = second_of(t);
    if (s <= newest_ - static_cast<std::int64_t>(counts_.size())) return;  // older than kept
    advance(s);
    counts_[slot(s)] += n;
  }

  // Counts of the last `seconds()` whole seconds before `now`, oldest first (the second in
  // progress is left out: it is not over).
  std::vector<std::uint64_t> per_second(Clock::time_point now) const {
    const std::int64_t current = second_of(now);
    std::vector<std::uint64_t> out(counts_.size(), 0);
    const std::int64_t n = static_cast<std::int64_t>(counts_.size());
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t s = current - n + i;
      if (s > newest_ - n && s <= newest_ && s >= 0) out[static_cast<std::size_t>(i)] = counts_[slot(s)];
    }
    return out;
  }

  // The mean rate over the last `window` whole seconds.
  double rate(Clock::time_point now, int window = 3) const {
    const auto counts = per_second(now);
    std::uint64_t sum = 0;
    const int n = std::min<int>(window, static_cast<int>(counts.size()));
    for (int i = 0; i < n; ++i) sum += counts[counts.size() - 1 - static_cast<std::size_t>(i)];
    return n > 0 ? static_cast<double>(sum) / n : 0;
  }

  int seconds() const { return static_cast<int>(counts_.size()); }

 private:
  static std::int64_t second_of(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  }
  std::size_t slot(std::int64_t s) const {
    const auto n = static_cast<std::int64_t>(counts_.size());
    return static_cast<std::size_t>(((s % n) + n) % n);
  }
  // Clears the slots of the seconds between the newest one seen and `s`.
  void advance(std::int64_t s) {
    if (s <= newest_) return;
    const auto n = static_cast<std::int64_t>(counts_.size());
    for (std::int64_t k = std::max(newest_ + 1, s - n + 1); k <= s; ++k) counts_[slot(k)] = 0;
    newest_ = s;
  }

  std::vector<std::uint64_t> counts_;
  std::int64_t newest_ = -1;
};

}  // namespace herd
