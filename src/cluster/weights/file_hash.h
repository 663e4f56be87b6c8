// Content identity of a model file and checksums of its tensors, both SHA-256 (OpenSSL; about
// 1.4 GB/s per core on a CPU with SHA extensions, so a 40 GB model takes ~30 s on one core, less
// with threads). The identity is the SHA-256 of the file size, the header (metadata and tensor
// table) and every tensor's SHA-256 in file order: one pass yields both, so the coordinator can
// answer any stage's manifest at once. Results are cached per path + size + mtime, optionally in
// a JSON file so that a restart does not hash the model again.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "gguf/reader.h"

namespace herd::cluster {

// Streaming SHA-256.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, std::size_t n);
  // 64 lowercase hex digits. The object must not be used afterwards.
  std::string finish_hex();

 private:
  void* ctx_;  // EVP_MD_CTX
};

std::string sha256_hex(std::span<const std::uint8_t> bytes);

struct FileDigest {
  std::string identity;  // 64 hex digits
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::map<std::string, std::string, std::less<>> tensor_sha256;  // name -> 64 hex digits
};

// Hashes every tensor of `file` (with `threads` threads, at least 1) and the header.
FileDigest digest_gguf(const gguf::File& file, int threads = 1);

// Thread-safe cache of digests keyed by path; an entry is reused only while the file's size and
// mtime are unchanged.
class FileHashCache {
 public:
  // With a non-empty `store`, entries are loaded from and saved to that JSON file (a corrupt
  // store is ignored: the digests are recomputed).
  explicit FileHashCache(std::filesystem::path store = {}, int threads = 1);
  // The digest of the file `file` was opened from (File::open; throws InvalidArgument for a File
  // made by parse(), which has no path to key on).
  std::shared_ptr<const FileDigest> get(const gguf::File& file);

 private:
  void load();
  void save() const;

  std::filesystem::path store_;
  int threads_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const FileDigest>> by_path_;
};

}  // namespace herd::cluster
