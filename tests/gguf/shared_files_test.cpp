// Real GGUF files (llama.cpp's output) from ../shared open and report sensible values.
#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include "gguf/reader.h"
#include "support/test_data.h"
#include "tensor/type.h"

namespace herd::gguf {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> gguf_files_in(const std::string& relative_dir) {
  std::vector<fs::path> out;
  fs::path dir = herd::testing::shared_file(relative_dir);
  if (dir.empty()) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".gguf") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Every tensor lies inside the file, and shapes are consistent with the type table.
void expect_consistent(const File& f) {
  for (const TensorInfo& t : f.tensors()) {
    const auto& tr = tensor::traits(t.type);
    EXPECT_EQ(t.offset % f.alignment(), 0u) << t.name;
    EXPECT_EQ(t.n_bytes, tensor::row_bytes(t.type, t.dims[0]) *
                             static_cast<std::uint64_t>(t.n_elements / t.dims[0]))
        << t.name;
    EXPECT_EQ(t.dims[0] % tr.block_size, 0) << t.name;
    const std::uint8_t* p = f.tensor_data(t);
    EXPECT_LE(p + t.n_bytes, f.bytes().data() + f.bytes().size()) << t.name;
  }
}

TEST(GgufSharedFiles, GoldenModelsOpenWithArchitectureAndTensors) {
  auto files = gguf_files_in("golden");
  if (files.empty()) GTEST_SKIP() << "../shared/golden not found (set HERD_SHARED)";
  for (const fs::path& p : files) {
    SCOPED_TRACE(p.filename().string());
    File f = File::open(p.string());
    EXPECT_GE(f.version(), 2u);
    std::string arch = f.architecture();
    EXPECT_FALSE(arch.empty());
    EXPECT_GT(f.tensors().size(), 0u);
    EXPECT_GT(f.metadata().require_int(arch + ".embedding_length"), 0);
    EXPECT_GT(f.metadata().require_int(arch + ".block_count"), 0);
    // All golden models share stories260K's 512-token vocabulary (golden/README.md).
    auto tokens = f.metadata().get_string_array("tokenizer.ggml.tokens");
    ASSERT_TRUE(tokens.has_value());
    EXPECT_EQ(tokens->size(), 512u);
    EXPECT_NE(f.find_tensor("token_embd.weight"), nullptr);
    expect_consistent(f);
  }
}

TEST(GgufSharedFiles, Stories260KReportsItsShape) {
  HERD_REQUIRE_SHARED(path, "models/stories260K.gguf");
  File f = File::open(path.string());
  EXPECT_EQ(f.architecture(), "llama");
  EXPECT_EQ(f.tensors().size(), 48u);
  EXPECT_EQ(f.metadata().require_int("llama.embedding_length"), 64);
  const TensorInfo* embd = f.find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->dims, (std::vector<std::int64_t>{64, 512}));
  EXPECT_EQ(embd->n_elements, 64 * 512);
  expect_consistent(f);
}

TEST(GgufSharedFiles, VocabOnlyFilesOpen) {
  auto files = gguf_files_in("models/llama.cpp-vocab");
  if (files.empty()) GTEST_SKIP() << "../shared/models/llama.cpp-vocab not found";
  for (const fs::path& p : files) {
    SCOPED_TRACE(p.filename().string());
    File f = File::open(p.string());
    auto tokens = f.metadata().get_string_array("tokenizer.ggml.tokens");
    ASSERT_TRUE(tokens.has_value());
    EXPECT_GT(tokens->size(), 100u);
    EXPECT_TRUE(f.metadata().get_string("tokenizer.ggml.model").has_value());
    expect_consistent(f);
  }
}

}  // namespace
}  // namespace herd::gguf
