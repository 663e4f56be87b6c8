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
// How long a thread spins before it sleeps. Long enough to bridge the gaps between the kernels
// of one forward pass, short enough to be invisible when idle.
constexpr auto kSpinTime = std::chrono::microseconds(200);

std::uint32_t generation_of(std::uint64_t state) {
  return static_cast<std::uint32_t>(state >> 32);
}
}  // namespace

int ThreadPool::default_thread_count() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(n_threads > 0 ? n_threads : default_thread_count()) {
  workers_.reserve(n_threads_ - 1);
  // Workers start from generation 0 whenever they get scheduled: a job posted (or the pool
  // destroyed) before a worker first runs must not be mistaken for the one it has seen.
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_.store(true);
    std::uint64_t s = state_.load();
    state_.store((static_cast<std::uint64_t>(generation_of(s) + 1) << 32) | kClosed);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_slots() {
  for (;;) {
    int slot = next_slot_.fetch_add(1, std::memory_order_relaxed);
    if (slot >= n_threads_) return;
    (*job_)(slot, n_threads_);
  }
}

void ThreadPool::run(const std::function<void(int, int)>& job) {
  if (n_threads_ == 1) {
    job(0, 1);
    return;
  }
  job_ = &job;
  next_slot_.store(0, std::memory_order_relaxed);
  // Open a new generation with no active workers. seq_cst pairs with the workers' sleeping_
  // increment so that a worker going to sleep either sees this job or is woken for it.
  std::uint64_t next_gen = generation_of(state_.load()) + 1;
  state_.store(next_gen << 32);
  if (sleeping_.load() > 0) {
    std::lock_guard lock(mutex_);
    wake_.notify_all();
  }
  run_slots();
  // Close the job: workers that have not joined by now never will; wait for those that did.
  std::uint64_t s = state_.fetch_or(kClosed) | kClosed;
  auto start = std::chrono::steady_clock::now();
  while ((s & kActiveMask) != 0) {
    if (std::chrono::steady_clock::now() - start > kSpinTime) {
      std::unique_lock lock(mutex_);
      done_.wait(lock, [&] { return (state_.load() & kActiveMask) == 0; });
      break;
    }
    HERD_PAUSE();
    s = state_.load(std::memory_order_acquire);
  }
  job_ = nullptr;
}

void ThreadPool::worker_loop() {
  std::uint32_t seen = 0;
  for (;;) {
    auto start = std::chrono::steady_clock::now();
    std::uint64_t s = state_.load(std::memory_order_acquire);
    while (generation_of(s) == seen && !stop_.load(std::memory_order_relaxed)) {
      if (std::chrono::steady_clock::now() - start > kSpinTime) {
        std::unique_lock lock(mutex_);
        sleeping_.fetch_add(1);
        wake_.wait(lock, [&] { return stop_.load() || generation_of(state_.load()) != seen; });
        sleeping_.fetch_sub(1);
      } else {
        HERD_PAUSE();
      }
      s = state_.load(std::memory_order_acquire);
    }
    if (stop_.load()) return;
    seen = generation_of(s);
    // Join the job unless it is already closed (the caller finished it alone).
    bool joined = false;
    while (generation_of(s) == seen && !(s & kClosed)) {
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) {
        joined = true;
        break;
      }
    }
    if (!joined) continue;
    run_slots();
    std::uint64_t after = state_.fetch_sub(1, std::memory_order_acq_rel) - 1;
    if ((after & kClosed) && (after & kActiveMask) == 0) {
      std::lock_guard lock(mutex_);
      done_.notify_all();
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
  // Guided self-scheduling: each claim takes a share of what is left (at least `grain`), so the
  // early chunks are large and contiguous (good for the hardware prefetchers streaming weights)
  // and the small late ones even out a thread that was slowed down or started late. A static
  // split left the faster thread spinning at every barrier: ~8% of decode samples at 2 threads.
  std::atomic<std::int64_t> next{0};
  run([&](int, int) {
    std::int64_t begin = next.load(std::memory_order_relaxed);
    for (;;) {
      std::int64_t end;
      do {
        if (begin >= n) return;
        end = std::min(n, begin + std::max(grain, (n - begin) / (2 * used)));
      } while (!next.compare_exchange_weak(begin, end, std::memory_order_relaxed));
      body(begin, end);
      begin = next.load(std::memory_order_relaxed);
    }
  });
}

}  // namespace herd
