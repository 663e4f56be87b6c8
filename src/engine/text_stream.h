// Turns the bytes of generated tokens into text that is safe to show: cut between UTF-8
// characters, with any tail that could be the start of a stop string held back until the
// following tokens decide it.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "engine/utf8.h"

namespace herd::engine {

class TextStream {
 public:
  explicit TextStream(const std::vector<std::string>& stops) {
    for (const std::string& s : stops) {
      if (!s.empty()) stops_.push_back(s);
    }
  }

  // Appends bytes; returns the text that became final. `stopped` is set when a stop string
  // completed: the text before it is returned and the rest is dropped.
  std::string push(std::string_view bytes, bool& stopped) {
    pending_ += bytes;
    std::size_t match = std::string::npos;
    for (const std::string& s : stops_) match = std::min(match, pending_.find(s));
    if (match != std::string::npos) {
      stopped = true;
      std::string out = utf8_sanitize(std::string_view(pending_).substr(0, match));
      pending_.clear();
      return out;
    }
    std::size_t cut = std::min(utf8_complete_prefix(pending_), held_from());
    std::string out = pending_.substr(0, cut);
    pending_.erase(0, cut);
    return out;
  }

  // At the end of generation: whatever is held back is final after all.
  std::string flush() {
    std::string out = utf8_sanitize(pending_);
    pending_.clear();
    return out;
  }

 private:
  // Start of the longest tail of pending_ that is a proper prefix of some stop string.
  std::size_t held_from() const {
    std::size_t from = pending_.size();
    for (const std::string& s : stops_) {
      std::size_t longest = std::min(s.size() - 1, pending_.size());
      for (std::size_t len = longest; len > 0; --len) {
        if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
          from = std::min(from, pending_.size() - len);
          break;
        }
      }
    }
    return from;
  }

  std::vector<std::string> stops_;
  std::string pending_;
};


}  // namespace herd::engine
