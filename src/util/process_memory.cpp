#include "util/process_memory.h"

#include <unistd.h>

#include <fstream>

namespace herd {

std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t total_pages = 0, resident_pages = 0;
  if (!(statm >> total_pages >> resident_pages)) return 0;
  const long page = sysconf(_SC_PAGESIZE);
  return page > 0 ? resident_pages * static_cast<std::size_t>(page) : 0;
}

}  // namespace herd
