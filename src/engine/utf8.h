// UTF-8 boundaries for streaming: tokens carry bytes, and one character may be split across
// several tokens (byte-fallback and byte-level BPE), so text is cut only between characters.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace herd::engine {

// Length of the longest prefix of `s` that does not end inside an unfinished UTF-8 sequence.
// Bytes that can never become valid (a stray continuation byte) are not held back.
std::size_t utf8_complete_prefix(std::string_view s);

// `s` with every invalid or truncated sequence replaced by U+FFFD, for text that will not grow.
std::string utf8_sanitize(std::string_view s);

}  // namespace herd::engine
