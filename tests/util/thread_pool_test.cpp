#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
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

TEST(ThreadPool, ParallelForChunksHoldAtLeastGrainItems) {
  ThreadPool pool(2);
  std::mutex mutex;
  std::vector<std::pair<std::int64_t, std::int64_t>> chunks;
  pool.parallel_for(1000, 10, [&](std::int64_t b, std::int64_t e) {
    std::lock_guard lock(mutex);
    chunks.emplace_back(b, e);
  });
  std::sort(chunks.begin(), chunks.end());
  std::int64_t covered = 0;
  for (auto [b, e] : chunks) {
    EXPECT_EQ(b, covered);
    EXPECT_TRUE(e - b >= 10 || e == 1000) << b << ".." << e;
    covered = e;
  }
  EXPECT_EQ(covered, 1000);
  EXPECT_GT(chunks.size(), 2u);  // claimed piecewise, not one static half per thread
}

TEST(ThreadPool, ParallelForGivesASlowThreadLessOfTheRange) {
  ThreadPool pool(2);
  constexpr std::int64_t kN = 1000;
  std::mutex mutex;
  std::map<std::thread::id, std::int64_t> items;
  std::thread::id slow;
  pool.parallel_for(kN, 1, [&](std::int64_t b, std::int64_t e) {
    // Whichever thread claims the first chunk is held up, as a descheduled core would be.
    if (b == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::lock_guard lock(mutex);
      slow = std::this_thread::get_id();
    }
    std::lock_guard lock(mutex);
    items[std::this_thread::get_id()] += e - b;
  });
  // On a loaded machine the second thread may never join; when it did, it took over the rest
  // (a static split would have left the slow thread exactly half).
  if (items.size() == 2) {
    EXPECT_LT(items[slow], kN / 2);
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
