// A fixed pool of compute threads. The calling thread takes part as thread 0, so a pool of N
// threads starts N-1 workers. Between jobs the workers spin briefly (jobs in a forward pass come
// microseconds apart) and then sleep on a condition variable: no thread burns a core while the
// node is idle and serving the network.
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

  // Runs job(thread_index, n_threads) on every thread and returns when all are done.
  // Not re-entrant: a job must not call run() on the same pool.
  void run(const std::function<void(int, int)>& job);

  // Splits [0, n) into contiguous chunks of at least `grain` items, one call per chunk.
  void parallel_for(std::int64_t n, std::int64_t grain,
                    const std::function<void(std::int64_t, std::int64_t)>& body);

  static int default_thread_count();

 private:
  void worker_loop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleeping_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
};

}  // namespace herd
