#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <vector>

namespace herd {
namespace {

TEST(ThreadPool, RunCallsEveryThreadOnceWithItsIndex) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> calls(3);
  pool.run([&](int ith, int nth) {
    EXPECT_EQ(nth, 3);
    calls[ith].fetch_add(1);
  });
  for (auto& c : calls) EXPECT_EQ(c.load(), 1);
}

TEST(ThreadPool, ParallelForCoversRangeExactlyOnceAcrossManyJobs) {
  ThreadPool pool(4);
  for (int round = 0; round < 200; ++round) {
    std::int64_t n = 1 + round * 7;
    std::vector<int> hits(n, 0);
    pool.parallel_for(n, 3, [&](std::int64_t b, std::int64_t e) {
      for (auto i = b; i < e; ++i) hits[i]++;
    });
    for (auto h : hits) ASSERT_EQ(h, 1);
  }
}

TEST(ThreadPool, SingleThreadPoolRunsInline) {
  ThreadPool pool(1);
  int sum = 0;
  pool.parallel_for(10, 1, [&](std::int64_t b, std::int64_t e) {
    for (auto i = b; i < e; ++i) sum += static_cast<int>(i);
  });
  EXPECT_EQ(sum, 45);
}

}  // namespace
}  // namespace herd
