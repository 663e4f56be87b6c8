#include "util/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#define HERD_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define HERD_PAUSE() __asm__ volatile("yield")
#else
#define HERD_PAUSE() ((void)0)
#endif

namespace herd {
namespace {
// How long a worker spins for the next job before it sleeps. Long enough to bridge the gaps
// between the kernels of one forward pass, short enough to be invisible when idle.
constexpr auto kSpinTime = std::chrono::microseconds(200);
}  // namespace

int ThreadPool::default_thread_count() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(n_threads > 0 ? n_threads : default_thread_count()) {
  workers_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run(const std::function<void(int, int)>& job) {
  if (n_threads_ == 1) {
    job(0, 1);
    return;
  }
  job_ = &job;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    std::lock_guard lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  if (sleeping_.load() > 0) wake_.notify_all();
  job(0, n_threads_);
  // Wait for the workers: spin first, then sleep.
  auto start = std::chrono::steady_clock::now();
  while (pending_.load(std::memory_order_acquire) != 0) {
    if (std::chrono::steady_clock::now() - start > kSpinTime) {
      std::unique_lock lock(mutex_);
      done_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
      break;
    }
    HERD_PAUSE();
  }
  job_ = nullptr;
}

void ThreadPool::worker_loop(int index) {
  std::uint64_t seen = 0;
  for (;;) {
    auto start = std::chrono::steady_clock::now();
    while (generation_.load(std::memory_order_acquire) == seen) {
      if (std::chrono::steady_clock::now() - start > kSpinTime) {
        std::unique_lock lock(mutex_);
        sleeping_.fetch_add(1);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        sleeping_.fetch_sub(1);
        break;
      }
      HERD_PAUSE();
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load()) return;
    (*job_)(index, n_threads_);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard lock(mutex_);
      done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(std::int64_t n, std::int64_t grain,
                              const std::function<void(std::int64_t, std::int64_t)>& body) {
  if (n <= 0) return;
  grain = std::max<std::int64_t>(1, grain);
  std::int64_t max_chunks = (n + grain - 1) / grain;
  int used = static_cast<int>(std::min<std::int64_t>(n_threads_, max_chunks));
  if (used <= 1) {
    body(0, n);
    return;
  }
  run([&](int ith, int) {
    if (ith >= used) return;
    std::int64_t begin = n * ith / used;
    std::int64_t end = n * (ith + 1) / used;
    if (begin < end) body(begin, end);
  });
}

}  // namespace herd
