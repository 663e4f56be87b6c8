// The API server's connection threads (cpp-httplib serves each connection on one thread of its
// task queue). httplib's own pool has a fixed number of threads: a few clients that open
// connections and never finish a request (slow or idle: "slowloris") hold every one of them and
// nobody else is served. This pool keeps `min_threads` and adds a thread whenever a connection
// arrives with none idle, up to `max_threads`; only beyond that do connections wait in line.
#pragma once

#include <httplib.h>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace herd::api {

class ConnectionPool final : public httplib::TaskQueue {
 public:
  ConnectionPool(std::size_t min_threads, std::size_t max_threads);
  ~ConnectionPool() override;

  void enqueue(std::function<void()> job) override;
  void shutdown() override;

  std::size_t threads() const;

 private:
  void work();

  const std::size_t max_threads_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;
  bool shutdown_ = false;
};

}  // namespace herd::api
