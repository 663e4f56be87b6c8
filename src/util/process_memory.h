// The calling process's resident memory, for reports that compare it with what the model needs.
#pragma once

#include <cstddef>
#include <cstdint>

namespace herd {

// Bytes resident in RAM now (Linux: /proc/self/statm, which counts mapped file pages the
// process has touched too); 0 where the platform does not say.
std::size_t resident_bytes();

// Memory the system could give this process without swapping (Linux: MemAvailable of
// /proc/meminfo); 0 where the platform does not say.
std::uint64_t available_memory_bytes();

}  // namespace herd
