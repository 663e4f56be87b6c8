#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <numeric>
#include <thread>
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

namespace herd {
namespace {

// Slots are claimed, not assigned: the caller may run every slot itself when workers are slow,
// but each slot still runs exactly once per job, over many back-to-back jobs.
TEST(ThreadPool, EverySlotRunsExactlyOnceOverManyJobs) {
  ThreadPool pool(4);
  std::vector<std::atomic<int>> hits(4);
  for (int round = 0; round < 5000; ++round) {
    pool.run([&](int slot, int nth) {
      ASSERT_EQ(nth, 4);
      hits[slot].fetch_add(1, std::memory_order_relaxed);
    });
  }
  for (auto& h : hits) EXPECT_EQ(h.load(), 5000);
}

TEST(ThreadPool, WorkersSleepingBetweenJobsStillTakePart) {
  ThreadPool pool(2);
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // past the spin time
    std::atomic<int> sum{0};
    pool.parallel_for(1000, 1, [&](std::int64_t b, std::int64_t e) {
      for (auto i = b; i < e; ++i) sum.fetch_add(static_cast<int>(i));
    });
    EXPECT_EQ(sum.load(), 499500);
  }
}

}  // namespace
}  // namespace herd

namespace herd {
namespace {

TEST(ThreadPool, DestroyedRightAfterConstructionDoesNotHang) {
  for (int i = 0; i < 200; ++i) {
    ThreadPool pool(3);
    if (i % 2) pool.run([](int, int) {});
  }
  SUCCEED();
}

}  // namespace
}  // namespace herd
