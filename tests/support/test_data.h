// Where the reference data lives: ../shared next to the repository (HERD_SHARED overrides).
// Tests that need it skip, saying so, when it is absent.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace herd::testing {

// The shared data folder, or empty when not found.
std::filesystem::path shared_dir();
// shared_dir()/relative, or empty when shared_dir() is empty or the file does not exist.
std::filesystem::path shared_file(const std::string& relative);
// A fresh empty temporary directory, removed at process exit.
std::filesystem::path temp_dir(const std::string& tag);
std::vector<std::uint8_t> read_bytes(const std::filesystem::path& path);
std::string read_text(const std::filesystem::path& path);
std::vector<float> read_f32(const std::filesystem::path& path);
std::vector<std::int32_t> read_ids(
    const std::filesystem::path& path);  // whitespace-separated, '#' comments skipped
// Path of the built `herd` executable.
std::filesystem::path herd_binary();

// The 32-token input of every ../shared/golden reference run (golden/README.md).
inline const std::vector<std::int32_t> kGoldenInput = {
    1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426,
    338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426};

// Whether a golden model's weights are float (stem ends in -f32, -f16 or -bf16): such files must
// give identical greedy tokens, quantized ones are held to cosine tolerances.
inline bool is_float_type(const std::string& stem) {
  return stem.ends_with("-f32") || stem.ends_with("-f16") || stem.ends_with("-bf16");
}

}  // namespace herd::testing

// Skips the current test with a message when a shared file is missing.
#define HERD_REQUIRE_SHARED(var, relative)                  \
  auto var = ::herd::testing::shared_file(relative);        \
  if (var.empty())                                          \
  GTEST_SKIP() << "reference data ../shared/" << (relative) \
               << " not found (set HERD_SHARED to the shared folder)"
