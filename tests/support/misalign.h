// Where the kernel tests put weight rows.
#pragma once

#include <cstddef>

namespace herd::testing {

// Weight rows at an address that is not vector-aligned, but aligned to their elements as every
// row in a GGUF is (float rows to 4 bytes; blocks, of even size, to the 2 of their 16-bit
// scales, which the scalar code reads as such; gguf::kMinAlignment).
inline constexpr std::size_t kMisalign = 4;

}  // namespace herd::testing
