// The calling process's resident memory, for reports that compare it with what the model needs.
#pragma once

#include <cstddef>

namespace herd {

// Bytes resident in RAM now (Linux: /proc/self/statm, which counts mapped file pages the
// process has touched too); 0 where the platform does not say.
std::size_t resident_bytes();

}  // namespace herd
