#include "util/process_memory.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace herd {
namespace {

TEST(ProcessMemory, GrowsWhenPagesAreTouched) {
#if defined(__linux__)
  const std::size_t before = resident_bytes();
  ASSERT_GT(before, 0u);
  std::vector<char> block(64u << 20);
  std::memset(block.data(), 1, block.size());  // touch every page
  const std::size_t after = resident_bytes();
  EXPECT_GE(after, before + (48u << 20)) << "64 MiB were touched";
  EXPECT_EQ(block[12345], 1);
#else
  GTEST_SKIP() << "resident_bytes() reads /proc, Linux only";
#endif
}

}  // namespace
}  // namespace herd
