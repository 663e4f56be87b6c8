#include "util/memory_bandwidth.h"

#include <gtest/gtest.h>

#include <cmath>

#include "util/error.h"
#include "util/thread_pool.h"

namespace herd {
namespace {

// Speed is never asserted (it depends on the machine); only that a sane number comes back.
TEST(MemoryBandwidth, ReportsAPositiveFiniteRateAndWhatItRead) {
  ThreadPool pool(2);
  auto bw = measure_memory_bandwidth(pool, std::size_t{8} << 20, 3);
  EXPECT_GT(bw.read_gb_per_s, 0.0);
  EXPECT_TRUE(std::isfinite(bw.read_gb_per_s));
  EXPECT_EQ(bw.bytes, std::size_t{8} << 20);
  EXPECT_EQ(bw.reps, 3);
}

TEST(MemoryBandwidth, WorksWithOneThreadAndOddSizes) {
  ThreadPool pool(1);
  auto bw = measure_memory_bandwidth(pool, (std::size_t{1} << 20) + 12345, 1);
  EXPECT_GT(bw.read_gb_per_s, 0.0);
  EXPECT_EQ(bw.bytes % 8, 0u);
}

TEST(MemoryBandwidth, RejectsTinyBuffersAndZeroRepetitions) {
  ThreadPool pool(1);
  EXPECT_THROW(measure_memory_bandwidth(pool, 4096, 3), InvalidArgument);
  EXPECT_THROW(measure_memory_bandwidth(pool, std::size_t{2} << 20, 0), InvalidArgument);
}

}  // namespace
}  // namespace herd
