// Shard files written from a layout, their verification, and the model file identity.
#include "cluster/weights/shard_file.h"

#include <gtest/gtest.h>

#include <fstream>

#include "cluster/weights/file_hash.h"
#include "gguf/writer.h"
#include "support/test_data.h"
#include "util/error.h"

namespace herd::cluster {
namespace {

void write_file(const std::filesystem::path& p, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

TEST(Sha256, MatchesKnownVector) {
  std::string abc = "abc";
  EXPECT_EQ(sha256_hex({reinterpret_cast<const std::uint8_t*>(abc.data()), abc.size()}),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ShardFile, LayoutWritesAFileTheReaderAcceptsAndVerifies) {
  gguf::Writer w(64);
  w.set_string("general.architecture", "llama");
  w.set_string_array("tokenizer.ggml.tokens", {"a", "b"});
  w.set_f32("llama.rope.freq_base", 10000.0f);
  auto meta_bytes = w.to_bytes();
  gguf::File meta = gguf::File::parse(meta_bytes);

  std::vector<std::uint8_t> a(3 * 5 * 4, 7), b(11 * 2, 9);  // f32 [3,5], f16 [11]
  std::vector<ManifestTensor> tensors = {
      {"blk.0.a.weight", tensor::Type::kF32, {3, 5}, a.size(), sha256_hex(a)},
      {"b.weight", tensor::Type::kF16, {11}, b.size(), sha256_hex(b)}};
  ShardLayout layout = layout_shard(meta.metadata(), tensors);
  ASSERT_EQ(layout.offsets.size(), 2u);
  EXPECT_EQ(layout.offsets[0] % 64, 0u);
  EXPECT_EQ(layout.offsets[1] % 64, 0u);
  std::vector<std::uint8_t> file = layout.header;
  file.resize(layout.file_size, 0);
  std::copy(a.begin(), a.end(), file.begin() + layout.offsets[0]);
  std::copy(b.begin(), b.end(), file.begin() + layout.offsets[1]);
  auto path = testing::temp_dir("shard_file") / "s.gguf";
  write_file(path, file);

  gguf::File parsed = gguf::File::open(path.string());
  EXPECT_EQ(parsed.metadata().get_string_array("tokenizer.ggml.tokens"),
            (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(parsed.alignment(), 64u);
  ASSERT_NE(parsed.find_tensor("b.weight"), nullptr);
  EXPECT_EQ(parsed.tensor_data(*parsed.find_tensor("b.weight"))[3], 9);

  ShardManifest m;
  m.model_hash = std::string(64, 'a');
  m.range = {0, 1};
  m.n_layer = 1;
  m.metadata_sha256 = std::string(64, 'b');
  m.tensors = tensors;
  std::string reason;
  EXPECT_TRUE(verify_shard(path, m, reason)) << reason;
  file[layout.offsets[1] + 5] ^= 1;
  write_file(path, file);
  EXPECT_FALSE(verify_shard(path, m, reason));
  EXPECT_NE(reason.find("b.weight"), std::string::npos) << reason;
}

TEST(ShardFile, ManifestFromJsonRejectsSizeThatDisagreesWithShape) {
  ShardManifest m;
  m.model_hash = std::string(64, 'a');
  m.range = {0, 1};
  m.n_layer = 2;
  m.metadata_sha256 = std::string(64, 'b');
  m.tensors = {{"x.weight", tensor::Type::kF32, {4, 4}, 64, std::string(64, 'c')}};
  EXPECT_TRUE(same_manifest(manifest_from_json(manifest_to_json(m), "t"), m));
  m.tensors[0].n_bytes = 63;
  EXPECT_THROW(manifest_from_json(manifest_to_json(m), "t"), FormatError);
  m.tensors[0].n_bytes = 64;
  m.tensors[0].name = "../x";
  EXPECT_THROW(manifest_from_json(manifest_to_json(m), "t"), FormatError);
}

TEST(FileHash, IdentityFollowsContentAndCacheIsPersisted) {
  auto dir = testing::temp_dir("file_hash");
  gguf::Writer w;
  w.set_string("general.architecture", "llama");
  std::vector<float> v(16, 1.0f);
  w.add_tensor_f32("t.weight", tensor::Type::kF32, {16}, v);
  w.write((dir / "m.gguf").string());
  std::string first;
  {
    FileHashCache cache(dir / "hashes.json");
    gguf::File f = gguf::File::open((dir / "m.gguf").string());
    auto d = cache.get(f);
    first = d->identity;
    EXPECT_EQ(first.size(), 64u);
    EXPECT_EQ(d->tensor_sha256.at("t.weight"), sha256_hex({f.tensor_data(f.tensors()[0]), 64}));
    EXPECT_EQ(cache.get(f).get(), d.get());  // cached
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "hashes.json"));
  {
    FileHashCache reloaded(dir / "hashes.json");
    gguf::File f = gguf::File::open((dir / "m.gguf").string());
    EXPECT_EQ(reloaded.get(f)->identity, first);
  }
  v[3] = 2.0f;  // same size, other content
  gguf::Writer w2;
  w2.set_string("general.architecture", "llama");
  w2.add_tensor_f32("t.weight", tensor::Type::kF32, {16}, v);
  w2.write((dir / "m2.gguf").string());
  gguf::File f2 = gguf::File::open((dir / "m2.gguf").string());
  EXPECT_NE(digest_gguf(f2).identity, first);
}

}  // namespace
}  // namespace herd::cluster
