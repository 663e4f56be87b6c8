// What a client holds while the scheduler serves its request: the text as it is generated, the
// final result or error, and a way to cancel. Shared between the scheduler's thread (producer)
// and the client's (consumer); every member is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <string>
#include <string_view>

#include "engine/generator.h"

namespace herd::engine {

class Ticket {
 public:
  // Client side. Waits up to `timeout` for new text or the end; moves the new text to the end of
  // `text`. Returns true once the request has finished and all its text was taken.
  bool wait(std::string& text, std::chrono::milliseconds timeout);
  // Waits for the end, collecting all text; then result() or rethrow().
  void wait_all(std::string& text);
  // Stops the request at its next step (a client that disconnected); its sequence is freed.
  void cancel();
  bool cancelled() const { return cancelled_.load(); }
  bool finished() const;
  // After finishing: the result, or the error the request failed with (rethrown).
  const GenerationResult& result() const;
  void rethrow() const;

  // Scheduler side.
  void push(std::string_view text);
  void finish(GenerationResult result);
  void fail(std::exception_ptr error);

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::string pending_;
  bool finished_ = false;
  GenerationResult result_;
  std::exception_ptr error_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace herd::engine
