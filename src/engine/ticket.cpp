#include "engine/ticket.h"

namespace herd::engine {

bool Ticket::wait(std::string& text, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return finished_ || !pending_.empty(); });
  text += pending_;
  pending_.clear();
  return finished_;
}

void Ticket::wait_all(std::string& text) {
  while (!wait(text, std::chrono::milliseconds(1000))) {
  }
}

void Ticket::cancel() {
  cancelled_.store(true);
}

bool Ticket::finished() const {
  std::lock_guard lock(mutex_);
  return finished_;
}

const GenerationResult& Ticket::result() const {
  std::lock_guard lock(mutex_);
  return result_;
}

void Ticket::rethrow() const {
  std::lock_guard lock(mutex_);
  if (error_) std::rethrow_exception(error_);
}

void Ticket::push(std::string_view text) {
  if (text.empty()) return;
  {
    std::lock_guard lock(mutex_);
    pending_ += text;
  }
  changed_.notify_all();
}

void Ticket::finish(GenerationResult result) {
  {
    std::lock_guard lock(mutex_);
    result_ = std::move(result);
    finished_ = true;
  }
  changed_.notify_all();
}

void Ticket::fail(std::exception_ptr error) {
  {
    std::lock_guard lock(mutex_);
    error_ = std::move(error);
    finished_ = true;
  }
  changed_.notify_all();
}

}  // namespace herd::engine
