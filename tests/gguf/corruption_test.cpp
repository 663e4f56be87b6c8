// Corrupt, truncated and hostile files: each either parses or throws herd::Error with a message
// that names the problem — never a crash, never a huge allocation.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <random>
#include <string>

#include "gguf/gguf_builders.h"
#include "gguf/reader.h"
#include "util/error.h"

// Largest single allocation since the last reset. This test binary replaces the global operator
// new so that "a file claiming 2^60 tensors must not allocate" is checked, not hoped for.
namespace {
std::atomic<std::size_t> g_largest_allocation{0};
}  // namespace

// g++ cannot see that this malloc/free pairing is the replacement itself.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  std::size_t seen = g_largest_allocation.load(std::memory_order_relaxed);
  while (n > seen && !g_largest_allocation.compare_exchange_weak(seen, n)) {
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
#pragma GCC diagnostic pop

namespace herd::gguf {
namespace {

using testing::RawGguf;
using testing::sample_writer;

constexpr std::size_t kAllocationLimit = 1 << 20;  // the sample file is ~1 KiB

// Parses; returns the error message, or "" when the file parsed. Anything but herd::Error
// escaping (or a crash) fails the test.
std::string parse_error(const std::vector<std::uint8_t>& bytes) {
  try {
    File f = File::parse(bytes, "corrupt.gguf");
    for (const TensorInfo& t : f.tensors()) {
      const std::uint8_t* p = f.tensor_data(t);
      EXPECT_LE(p + t.n_bytes, bytes.data() + bytes.size());
    }
    return "";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_FALSE(msg.empty());
    return msg;
  }
}

void expect_error_containing(const std::vector<std::uint8_t>& bytes, const std::string& part) {
  g_largest_allocation = 0;
  std::string msg = parse_error(bytes);
  EXPECT_NE(msg.find(part), std::string::npos) << "message: '" << msg << "'";
  EXPECT_GT(g_largest_allocation.load(), 0u);  // the tracker is live (the message allocates)
  EXPECT_LT(g_largest_allocation.load(), kAllocationLimit);
}

// The smallest valid header for one f32 tensor of `dims`, data appended.
RawGguf one_tensor(std::vector<std::int64_t> dims, std::uint32_t type = 0, std::uint64_t offset = 0,
                   std::size_t data_bytes = 64) {
  RawGguf r;
  r.header(3, 1, 0).tensor_info("t", dims, type, offset).pad_to(32).zeros(data_bytes);
  return r;
}

TEST(GgufCorruption, TruncationAtEveryByteIsRejectedUntilTheDataEnds) {
  std::vector<std::uint8_t> full = sample_writer().to_bytes();
  File f = File::parse(full);
  std::uint64_t data_end = 0;
  for (const TensorInfo& t : f.tensors()) {
    data_end = std::max(data_end, f.data_offset() + t.offset + t.n_bytes);
  }
  for (std::size_t cut = 0; cut < full.size(); ++cut) {
    std::vector<std::uint8_t> part(full.begin(), full.begin() + cut);
    g_largest_allocation = 0;
    std::string msg = parse_error(part);
    if (cut < data_end) {
      EXPECT_FALSE(msg.empty()) << "cut at " << cut << " parsed";
      EXPECT_NE(msg.find("truncated"), std::string::npos) << "cut " << cut << ": " << msg;
    } else {
      EXPECT_EQ(msg, "") << "cut at " << cut << " (only padding lost)";
    }
    EXPECT_LT(g_largest_allocation.load(), kAllocationLimit) << "cut " << cut;
  }
}

TEST(GgufCorruption, SeededByteMutationsNeverCrash) {
  std::vector<std::uint8_t> full = sample_writer().to_bytes();
  std::size_t header_size = File::parse(full).data_offset();
  std::mt19937 rng(12345);
  int parsed = 0, rejected = 0;
  for (int i = 0; i < 2000; ++i) {
    std::vector<std::uint8_t> bytes = full;
    int n_flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < n_flips; ++k) {
      // Mostly the header, where the structure is; the data section parses whatever it holds.
      std::size_t limit = (rng() % 8 == 0) ? bytes.size() : header_size;
      std::size_t at = rng() % limit;
      switch (rng() % 3) {
        case 0:
          bytes[at] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          bytes[at] = static_cast<std::uint8_t>(rng());
          break;
        default:
          bytes[at] = 0xff;
          break;
      }
    }
    g_largest_allocation = 0;
    (parse_error(bytes).empty() ? parsed : rejected)++;
    // Strings and arrays are bounded by the bytes remaining: at most a few Values per byte.
    ASSERT_LT(g_largest_allocation.load(), kAllocationLimit) << "mutation " << i;
  }
  // Both outcomes occur, so the mutations reach structure and payload alike.
  EXPECT_GT(parsed, 0);
  EXPECT_GT(rejected, 0);
}

TEST(GgufCorruption, AbsurdCountsFailFastWithoutAllocating) {
  expect_error_containing(RawGguf().header(3, 1ull << 60, 0).zeros(64).bytes, "tensor count");
  expect_error_containing(RawGguf().header(3, 0, 1ull << 60).zeros(64).bytes, "key-value count");
  // A key claiming a 2^40-byte string.
  expect_error_containing(RawGguf().header(3, 0, 1).u64(1ull << 40).zeros(64).bytes, "truncated");
  // A string value claiming 2^40 bytes.
  expect_error_containing(RawGguf().header(3, 0, 1).str("k").u32(8).u64(1ull << 40).zeros(64).bytes,
                          "truncated");
  // An array claiming 2^62 u8 items, and 2^61 strings.
  expect_error_containing(
      RawGguf().header(3, 0, 1).str("k").u32(9).u32(0).u64(1ull << 62).zeros(64).bytes, "'k'");
  expect_error_containing(
      RawGguf().header(3, 0, 1).str("k").u32(9).u32(8).u64(1ull << 61).zeros(64).bytes, "'k'");
  // Nested arrays 100 deep are refused before the stack is at risk.
  RawGguf deep;
  deep.header(3, 0, 1).str("k").u32(9);
  for (int i = 0; i < 100; ++i) deep.u32(9).u64(1);
  expect_error_containing(deep.zeros(64).bytes, "nests arrays");
}

TEST(GgufCorruption, AbsurdDimensionsAreRejected) {
  expect_error_containing(one_tensor({1ll << 40, 1ll << 40}).bytes, "overflow");
  expect_error_containing(one_tensor({1ll << 62, 1ll << 1, 4}).bytes, "overflow");
  expect_error_containing(one_tensor({1ll << 40}).bytes, "larger than the whole file");
  expect_error_containing(one_tensor({0}).bytes, "dimension 0 = 0");
  expect_error_containing(one_tensor({4, -1}).bytes, "dimension 1 = -1");
  expect_error_containing(one_tensor({}).bytes, "0 dimensions");
  expect_error_containing(one_tensor({1, 1, 1, 1, 1}).bytes, "5 dimensions");
  // Q8_0 (type 8) rows must be a multiple of 32 elements.
  expect_error_containing(one_tensor({33}, 8).bytes, "block size");
}

TEST(GgufCorruption, TensorTypeOffsetAndExtentAreChecked) {
  expect_error_containing(one_tensor({4}, 4).bytes, "type id 4");  // removed Q4_2
  expect_error_containing(one_tensor({4}, 999).bytes, "type id 999");
  expect_error_containing(one_tensor({4}, 0, 8).bytes, "not a multiple of the alignment 32");
  expect_error_containing(one_tensor({32}, 0, 0, 64).bytes,
                          "data ends at byte 192 but the file has 128 bytes");
  expect_error_containing(one_tensor({4}, 0, 1ull << 62).bytes, "data starts");
  EXPECT_EQ(parse_error(one_tensor({16}, 0, 0, 64).bytes), "");
}

TEST(GgufCorruption, DuplicatesAreRejected) {
  RawGguf keys;
  keys.header(3, 0, 2).kv_u32("a", 1).kv_u32("a", 2);
  expect_error_containing(keys.bytes, "'a' appears twice");
  RawGguf tensors;
  tensors.header(3, 2, 0).tensor_info("w", {4}, 0, 0).tensor_info("w", {4}, 0, 32).pad_to(32);
  expect_error_containing(tensors.zeros(64).bytes, "'w' appears twice");
}

TEST(GgufCorruption, VersionsMagicAndAlignmentAreChecked) {
  expect_error_containing(RawGguf().header(1, 0, 0).bytes, "too old");
  expect_error_containing(RawGguf().header(4, 0, 0).bytes, "unsupported GGUF version 4");
  expect_error_containing(RawGguf().header(0x03000000, 0, 0).bytes, "big-endian");
  expect_error_containing({'G', 'G', 'M', 'L', 1, 0, 0, 0}, "not a GGUF file");
  expect_error_containing({}, "too small");
  EXPECT_EQ(parse_error(RawGguf().header(2, 0, 0).bytes), "");
  expect_error_containing(RawGguf().header(3, 0, 1).kv_u32("general.alignment", 0).bytes,
                          "power of two");
  expect_error_containing(RawGguf().header(3, 0, 1).kv_u32("general.alignment", 48).bytes,
                          "power of two");
  // Below the spec's 8, a tensor could start at an odd address (rows misaligned for their
  // 16-bit scales).
  expect_error_containing(RawGguf().header(3, 0, 1).kv_u32("general.alignment", 2).bytes,
                          "power of two from 8");
  expect_error_containing(RawGguf().header(3, 0, 1).str("general.alignment").u32(8).str("x").bytes,
                          "integer");
  expect_error_containing(RawGguf().header(3, 0, 1).str("k").u32(13).u32(0).bytes,
                          "unknown value type 13");
  // A v2 file with alignment 64: the data section starts at the next multiple of 64.
  RawGguf v2;
  v2.header(2, 1, 1).kv_u32("general.alignment", 64).tensor_info("t", {2}, 0, 0).pad_to(64);
  v2.zeros(64);
  File f = File::parse(v2.bytes);
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset(), 128u);
}

}  // namespace
}  // namespace herd::gguf
