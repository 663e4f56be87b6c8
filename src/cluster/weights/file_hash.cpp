#include "cluster/weights/file_hash.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "util/error.h"
#include "util/log.h"

namespace herd::cluster {
namespace {

std::string hex(const unsigned char* bytes, unsigned n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (unsigned i = 0; i < n; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return out;
}

struct FileStamp {
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
};

FileStamp stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("cannot stat {}: the model file is gone", path);
  return {static_cast<std::uint64_t>(st.st_size),
          static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) != 1) {
    fail("OpenSSL could not start a SHA-256 digest");
  }
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
}

void Sha256::update(const void* data, std::size_t n) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, n);
}

std::string Sha256::finish_hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &n);
  return hex(md, n);
}

std::string sha256_hex(std::span<const std::uint8_t> bytes) {
  Sha256 h;
  h.update(bytes.data(), bytes.size());
  return h.finish_hex();
}

FileDigest digest_gguf(const gguf::File& file, int threads) {
  const auto& tensors = file.tensors();
  std::vector<std::string> sums(tensors.size());
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < tensors.size();) {
      const gguf::TensorInfo& t = tensors[i];
      sums[i] = sha256_hex({file.tensor_data(t), t.n_bytes});
      if (const MappedFile* m = file.mapping()) {
        // Hashing streams the whole model once: do not let it evict the pages inference uses.
        m->advise_dontneed(file.data_offset() + t.offset, t.n_bytes);
      }
    }
  };
  int n_threads = std::clamp(threads, 1, 64);
  std::vector<std::thread> pool;
  for (int i = 1; i < n_threads; ++i) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();

  FileDigest digest;
  digest.size = file.bytes().size();
  Sha256 identity;
  identity.update(&digest.size, sizeof(digest.size));
  identity.update(file.bytes().data(), file.data_offset());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    identity.update(sums[i].data(), sums[i].size());
    digest.tensor_sha256[tensors[i].name] = sums[i];
  }
  digest.identity = identity.finish_hex();
  return digest;
}

FileHashCache::FileHashCache(std::filesystem::path store, int threads)
    : store_(std::move(store)), threads_(threads) {
  if (!store_.empty()) load();
}

std::shared_ptr<const FileDigest> FileHashCache::get(const gguf::File& file) {
  if (!file.mapping()) fail_argument("FileHashCache needs a file opened from a path");
  const std::string path = std::filesystem::absolute(file.path()).string();
  FileStamp now = stamp(path);
  std::lock_guard lock(mutex_);
  auto it = by_path_.find(path);
  if (it != by_path_.end() && it->second->size == now.size &&
      it->second->mtime_ns == now.mtime_ns) {
    return it->second;
  }
  log::info("hashing {} ({} MiB) for its content identity", path, now.size >> 20);
  auto digest = std::make_shared<FileDigest>(digest_gguf(file, threads_));
  digest->mtime_ns = now.mtime_ns;
  if (digest->size != now.size) fail("{} changed while it was being hashed", path);
  by_path_[path] = digest;
  if (!store_.empty()) save();
  return digest;
}

void FileHashCache::load() {
  std::ifstream in(store_);
  if (!in) return;
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    for (const auto& [path, e] : j.at("files").items()) {
      auto d = std::make_shared<FileDigest>();
      d->identity = e.at("identity").get<std::string>();
      d->size = e.at("size").get<std::uint64_t>();
      d->mtime_ns = e.at("mtime_ns").get<std::int64_t>();
      for (const auto& [name, sum] : e.at("tensors").items()) {
        d->tensor_sha256[name] = sum.get<std::string>();
      }
      by_path_[path] = d;
    }
  } catch (const std::exception& e) {
    log::warn("ignoring unreadable hash cache {}: {}", store_.string(), e.what());
    by_path_.clear();
  }
}

void FileHashCache::save() const {
  nlohmann::json files = nlohmann::json::object();
  for (const auto& [path, d] : by_path_) {
    files[path] = {{"identity", d->identity},
                   {"size", d->size},
                   {"mtime_ns", d->mtime_ns},
                   {"tensors", d->tensor_sha256}};
  }
  std::filesystem::path tmp = store_;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << nlohmann::json{{"files", files}}.dump();
    if (!out)
      fail("cannot write the hash cache {}: check the data dir's permissions", tmp.string());
  }
  std::filesystem::rename(tmp, store_);
}

}  // namespace herd::cluster
