#include "util/rate_history.h"

#include <gtest/gtest.h>

namespace herd {
namespace {

using namespace std::chrono_literals;
using Clock = RateHistory::Clock;

const Clock::time_point kStart = Clock::time_point{} + 1000s;

TEST(RateHistory, CountsPerWholeSecondOldestFirstWithoutTheSecondInProgress) {
  RateHistory h(4);
  h.add(kStart + 100ms, 3);
  h.add(kStart + 900ms, 2);
  h.add(kStart + 2s, 7);
  h.add(kStart + 3s + 10ms, 1);  // the second in progress at the query below
  const auto counts = h.per_second(kStart + 3s + 500ms);
  EXPECT_EQ(counts, (std::vector<std::uint64_t>{0, 5, 0, 7}));
  EXPECT_DOUBLE_EQ(h.rate(kStart + 3s + 500ms, 2), 3.5);  // (0 + 7) / 2
}

TEST(RateHistory, ForgetsWhatIsOlderThanItsWindow) {
  RateHistory h(3);
  h.add(kStart, 10);
  h.add(kStart + 10s, 4);
  EXPECT_EQ(h.per_second(kStart + 11s), (std::vector<std::uint64_t>{0, 0, 4}));
  h.add(kStart + 2s, 99);  // older than what is kept: ignored
  EXPECT_EQ(h.per_second(kStart + 11s), (std::vector<std::uint64_t>{0, 0, 4}));
  // Long after: all zero, and the slots are reused cleanly.
  EXPECT_EQ(h.per_second(kStart + 100s), (std::vector<std::uint64_t>{0, 0, 0}));
  h.add(kStart + 100s, 1);
  EXPECT_EQ(h.per_second(kStart + 101s), (std::vector<std::uint64_t>{0, 0, 1}));
}

TEST(RateHistory, EmptyIsZero) {
  RateHistory h;
  EXPECT_EQ(h.per_second(kStart).size(), 60u);
  EXPECT_DOUBLE_EQ(h.rate(kStart), 0.0);
}

}  // namespace
}  // namespace herd
