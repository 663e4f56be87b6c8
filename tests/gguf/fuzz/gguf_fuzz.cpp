// libFuzzer entry point for the GGUF reader. Not part of the default build (CMake only globs
// tests/gguf/*_test.cpp). Any input must either parse or throw herd::Error; a crash, a sanitizer
// report, an escaping std::exception or an out-of-memory is a bug.
//
// Build and run from the repository root (clang with libFuzzer):
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
//     tests/gguf/fuzz/gguf_fuzz.cpp src/gguf/*.cpp src/tensor/*.cpp src/util/*.cpp \
//     -lfmt -lspdlog -pthread -o gguf_fuzz
//   mkdir -p corpus && cp ../shared/models/stories260K.gguf corpus/   # any small GGUF seeds it
//   ./gguf_fuzz -rss_limit_mb=512 -max_len=65536 corpus
// (src/tensor/*_avx2.cpp etc. need their ISA flags; leave them out or add -mavx2 -mfma -mf16c.)
#include <cstddef>
#include <cstdint>
#include <span>

#include "gguf/reader.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    herd::gguf::File f = herd::gguf::File::parse(std::span<const std::uint8_t>(data, size));
    // Touch what a loader would touch: metadata conversions and every tensor's bytes.
    for (const auto& [key, value] : f.metadata().entries()) {
      if (value.is_integer()) (void)f.metadata().get_int(key).value_or(0);
    }
    volatile std::uint8_t sink = 0;
    for (const auto& t : f.tensors()) {
      const std::uint8_t* p = f.tensor_data(t);
      if (t.n_bytes > 0) sink = sink ^ p[0] ^ p[t.n_bytes - 1];
    }
  } catch (const herd::Error&) {
    // Rejected with a message: the expected outcome for most inputs.
  }
  return 0;
}
