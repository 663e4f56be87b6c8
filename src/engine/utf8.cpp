#include "engine/utf8.h"

namespace herd::engine {
namespace {

// Sequence length announced by a lead byte; 0 for a continuation or invalid byte.
std::size_t sequence_length(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return c >= 0xC2 ? 2 : 0;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return c <= 0xF4 ? 4 : 0;
  return 0;
}

bool is_continuation(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

}  // namespace

std::size_t utf8_complete_prefix(std::string_view s) {
  // Look back over at most 3 continuation bytes for the lead byte of the last sequence.
  std::size_t back = 0;
  while (back < 3 && back < s.size() &&
         is_continuation(static_cast<unsigned char>(s[s.size() - 1 - back]))) {
    ++back;
  }
  if (back == s.size()) return s.size();  // only continuation bytes: nothing to wait for
  std::size_t lead = s.size() - 1 - back;
  std::size_t need = sequence_length(static_cast<unsigned char>(s[lead]));
  if (need > back + 1) return lead;  // the sequence has started but not finished
  return s.size();
}

std::string utf8_sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = sequence_length(static_cast<unsigned char>(s[i]));
    bool ok = n > 0 && i + n <= s.size();
    for (std::size_t k = 1; ok && k < n; ++k)
      ok = is_continuation(static_cast<unsigned char>(s[i + k]));
    if (ok) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      // One replacement per broken sequence: the lead byte and the continuations it got.
      std::size_t skip = 1;
      while (n > 0 && skip < n && i + skip < s.size() &&
             is_continuation(static_cast<unsigned char>(s[i + skip]))) {
        ++skip;
      }
      out.append(kReplacement);
      i += skip;
    }
  }
  return out;
}

}  // namespace herd::engine
