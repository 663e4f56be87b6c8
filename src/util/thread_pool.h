// A fixed pool of compute threads. The calling thread takes part, so a pool of N threads starts
// N-1 workers. A job is N slots; each slot runs exactly once, on whichever thread claims it
// first. The caller never waits for a worker that has not started yet: when the machine is busy
// and a worker is descheduled, the caller simply runs that worker's slots itself (a pool that
// hands slot i to thread i stalls for a whole scheduler quantum instead, ~100x slower under
// load). Between jobs workers spin briefly (jobs in a forward pass come microseconds apart), then
// sleep on a condition variable: no thread burns a core while the node is idle.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace herd {

class ThreadPool {
 public:
  // n_threads <= 0 means one per available core.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs job(slot, n_threads) once for every slot in [0, n_threads) and returns when all are
  // done. Slots may run on any thread, several on one thread, one after another; per-slot scratch
  // indexed by `slot` is therefore safe. Not re-entrant: a job must not call run() on this pool.
  void run(const std::function<void(int, int)>& job);

  // Splits [0, n) into contiguous chunks of at least `grain` items, one call per chunk; threads
  // claim chunks as they go (large ones first), so a slower thread gets less of the range.
  void parallel_for(std::int64_t n, std::int64_t grain,
                    const std::function<void(std::int64_t, std::int64_t)>& body);

  static int default_thread_count();

 private:
  void worker_loop();
  void run_slots();

  // state_: [generation:32][closed:1][active workers:31]
  static constexpr std::uint64_t kClosed = 1ull << 31;
  static constexpr std::uint64_t kActiveMask = kClosed - 1;

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<std::uint64_t> state_{kClosed};
  std::atomic<int> next_slot_{0};
  std::atomic<int> sleeping_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
};

}  // namespace herd
