#include "cluster/weights/weight_fetcher.h"

#include <fcntl.h>
#include <httplib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "cluster/weights/file_hash.h"
#include "cluster/weights/shard_file.h"
#include "cluster/placement/shard_plan.h"
#include "util/error.h"
#include "util/log.h"

namespace herd::cluster {
namespace {

constexpr std::size_t kWriteBuffer = 4 << 20;
// Progress is saved at least this often while a tensor streams in, so a crash loses little.
constexpr std::uint64_t kCheckpointBytes = 64ull << 20;

void write_json_atomically(const std::filesystem::path& path, const nlohmann::json& j) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump();
    if (!out) fail("cannot write {}: check that the data dir is writable", tmp.string());
  }
  std::filesystem::rename(tmp, path);
}

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);  // throws on a missing or corrupt file
}

class FileHandle {
 public:
  FileHandle(const std::filesystem::path& path, int flags) : path_(path.string()) {
    fd_ = ::open(path_.c_str(), flags | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot open {}: {}", path_, std::strerror(errno));
  }
  ~FileHandle() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;

  void write_at(const void* data, std::size_t n, std::uint64_t offset) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail("cannot write {}: {} (is the disk full?)", path_, std::strerror(errno));
      p += w, n -= static_cast<std::size_t>(w), offset += static_cast<std::uint64_t>(w);
    }
  }
  std::string sha256_of(std::uint64_t offset, std::uint64_t n) const {
    Sha256 h;
    std::vector<char> buf(kWriteBuffer);
    while (n > 0) {
      ssize_t r = ::pread(fd_, buf.data(), std::min<std::uint64_t>(n, buf.size()),
                          static_cast<off_t>(offset));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0)
        fail("cannot read back {}: {}", path_, r < 0 ? std::strerror(errno) : "short file");
      h.update(buf.data(), static_cast<std::size_t>(r));
      offset += static_cast<std::uint64_t>(r), n -= static_cast<std::uint64_t>(r);
    }
    return h.finish_hex();
  }
  void resize(std::uint64_t n) {
    if (::ftruncate(fd_, static_cast<off_t>(n)) != 0) {
      fail("cannot size {} to {} bytes: {}", path_, n, std::strerror(errno));
    }
  }
  void sync() {
    if (::fdatasync(fd_) != 0) fail("cannot sync {}: {}", path_, std::strerror(errno));
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// One fetch of one shard: the state a resume needs is `manifest_`, `offsets_` and `done_`.
class ShardFetch {
 public:
  explicit ShardFetch(const FetchOptions& o)
      : o_(o), peer_(fmt::format("{}:{}", o.host, o.port)), client_(o.host, o.port) {
    key_ = shard_key(o.model_hash, o.range);
    dir_ = o.data_dir / "shards";
    final_ = dir_ / (key_ + ".gguf");
    manifest_path_ = dir_ / (key_ + ".manifest.json");
    part_ = dir_ / (key_ + ".gguf.part");
    progress_path_ = dir_ / (key_ + ".progress.json");
    client_.set_connection_timeout(o.timeout_s);
    client_.set_read_timeout(o.timeout_s);
    client_.set_write_timeout(o.timeout_s);
    client_.set_keep_alive(true);
  }

  FetchResult run() {
    std::filesystem::create_directories(dir_);
    if (auto cached = try_cache()) return *cached;
    manifest_ = get_manifest();
    if (!resume_progress()) start_fresh();
    FileHandle file(part_, O_RDWR);
    const std::uint64_t total = manifest_.tensor_bytes();
    for (std::size_t i = 0; i < manifest_.tensors.size(); ++i) fetch_tensor(file, i, total);
    file.sync();
    write_json_atomically(manifest_path_, manifest_to_json(manifest_));
    std::filesystem::rename(part_, final_);
    std::filesystem::remove(progress_path_);
    gguf::File::open(final_.string());  // the shard must parse before anyone loads it
    log::info("shard {} complete from {}", final_.string(), peer_);
    return {final_, false, received_};
  }

 private:
  std::optional<FetchResult> try_cache() {
    if (!std::filesystem::exists(final_) || !std::filesystem::exists(manifest_path_)) return {};
    std::string reason;
    try {
      ShardManifest m = manifest_from_json(read_json(manifest_path_), manifest_path_.string());
      if (verify_shard(final_, m, reason)) {
        report(m.tensor_bytes(), m.tensor_bytes());
        return FetchResult{final_, true, 0};
      }
    } catch (const std::exception& e) {
      reason = e.what();
    }
    log::warn("cached shard {} is unusable ({}); fetching it again", final_.string(), reason);
    std::filesystem::remove(final_);
    std::filesystem::remove(manifest_path_);
    return {};
  }

  // GET with the auth headers; throws naming the peer on a transport error or a non-200 status.
  httplib::Result get(const std::string& target, std::string* nonce = nullptr) {
    httplib::Headers headers;
    if (o_.auth) headers = o_.auth->sign("GET", target);
    if (nonce)
      *nonce =
          headers.count(HttpAuth::kNonceHeader) ? headers.find(HttpAuth::kNonceHeader)->second : "";
    auto res = client_.Get(target, headers);
    if (!res)
      fail("coordinator {}: GET {} failed: {}", peer_, target, httplib::to_string(res.error()));
    if (res->status != 200) {
      fail("coordinator {}: GET {} answered {}: {}", peer_, target, res->status,
           res->body.substr(0, 500));
    }
    return res;
  }

  ShardManifest get_manifest() {
    std::string target = fmt::format("/v1/weights/{}/manifest?first={}&last={}", o_.model_hash,
                                     o_.range.first, o_.range.last);
    std::string nonce;
    auto res = get(target, &nonce);
    if (o_.auth &&
        !o_.auth->verify_response(nonce, res->body, res->get_header_value(HttpAuth::kMacHeader))) {
      fail(
          "coordinator {}: the manifest's MAC does not verify; it was not sent by a holder of the "
          "cluster secret",
          peer_);
    }
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(res->body);
    } catch (const nlohmann::json::exception& e) {
      fail_format("coordinator {}: the manifest is not JSON: {}", peer_, e.what());
    }
    ShardManifest m = manifest_from_json(j, "manifest from " + peer_);
    if (m.model_hash != o_.model_hash || m.range.first != o_.range.first ||
        m.range.last != o_.range.last) {
      fail("coordinator {}: sent the manifest of another model or range", peer_);
    }
    return m;
  }

  bool resume_progress() {
    if (!std::filesystem::exists(progress_path_) || !std::filesystem::exists(part_)) return false;
    try {
      nlohmann::json j = read_json(progress_path_);
      ShardManifest saved = manifest_from_json(j.at("manifest"), progress_path_.string());
      if (!same_manifest(saved, manifest_)) return false;
      offsets_ = j.at("offsets").get<std::vector<std::uint64_t>>();
      done_ = j.at("done").get<std::vector<std::uint64_t>>();
      std::uint64_t size = j.at("file_size").get<std::uint64_t>();
      if (offsets_.size() != manifest_.tensors.size() || done_.size() != offsets_.size() ||
          std::filesystem::file_size(part_) != size) {
        return false;
      }
      file_size_ = size;
      for (std::size_t i = 0; i < done_.size(); ++i) {
        if (done_[i] > manifest_.tensors[i].n_bytes) return false;
        resumed_ += done_[i];
      }
      log::info("resuming shard {} from {}: {} bytes already here", key_, peer_, resumed_);
      return true;
    } catch (const std::exception& e) {
      log::warn("ignoring unreadable fetch progress {}: {}", progress_path_.string(), e.what());
      return false;
    }
  }

  void start_fresh() {
    auto res = get(fmt::format("/v1/weights/{}/metadata", o_.model_hash));
    std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(res->body.data()),
                                        res->body.size());
    if (bytes.size() != manifest_.metadata_bytes ||
        sha256_hex(bytes) != manifest_.metadata_sha256) {
      fail("coordinator {}: the model metadata does not match its manifest digest", peer_);
    }
    gguf::File original = gguf::File::parse(bytes, "metadata from " + peer_);
    gguf::Metadata metadata = original.metadata();
    metadata.set("herd.shard.model_hash", gguf::Value::from_string(o_.model_hash));
    metadata.set("herd.shard.first_layer", gguf::Value::from_u32(o_.range.first));
    metadata.set("herd.shard.last_layer", gguf::Value::from_u32(o_.range.last));
    ShardLayout layout = layout_shard(metadata, manifest_.tensors);
    {
      FileHandle file(part_, O_RDWR | O_CREAT | O_TRUNC);
      file.resize(layout.file_size);
      file.write_at(layout.header.data(), layout.header.size(), 0);
    }
    offsets_ = layout.offsets;
    file_size_ = layout.file_size;
    done_.assign(manifest_.tensors.size(), 0);
    save_progress();
  }

  void save_progress() {
    if (file_size_ == 0) file_size_ = std::filesystem::file_size(part_);
    write_json_atomically(progress_path_, {{"manifest", manifest_to_json(manifest_)},
                                           {"offsets", offsets_},
                                           {"file_size", file_size_},
                                           {"done", done_}});
  }

  std::uint64_t bytes_done() const {
    std::uint64_t n = 0;
    for (std::uint64_t d : done_) n += d;
    return n;
  }

  void report(std::uint64_t done, std::uint64_t total) const {
    if (o_.progress) o_.progress(done, total);
  }

  void fetch_tensor(FileHandle& file, std::size_t i, std::uint64_t total) {
    const ManifestTensor& t = manifest_.tensors[i];
    for (int attempt = 1;; ++attempt) {
      std::string problem;
      if (done_[i] < t.n_bytes) problem = download(file, i, total);
      if (problem.empty()) {
        if (file.sha256_of(offsets_[i], t.n_bytes) == t.sha256) return;
        problem = "the bytes received do not match the manifest's SHA-256";
        done_[i] = 0;  // a corrupt tensor is fetched again from its start
      }
      save_progress();
      if (attempt >= o_.max_attempts) {
        fail(
            "fetching tensor {} from coordinator {} failed after {} attempts: {} (progress is "
            "kept in {}; fetching again resumes)",
            t.name, peer_, attempt, problem, dir_.string());
      }
      log::warn("tensor {} from {}: {}; retrying", t.name, peer_, problem);
    }
  }

  // Streams the rest of tensor i into place. Returns "" on success, else what went wrong (the
  // bytes that did arrive are kept and counted in done_).
  std::string download(FileHandle& file, std::size_t i, std::uint64_t total) {
    const ManifestTensor& t = manifest_.tensors[i];
    const std::uint64_t from = done_[i];
    std::string target = fmt::format("/v1/weights/{}/tensors/{}", o_.model_hash, t.name);
    httplib::Headers headers;
    if (o_.auth) headers = o_.auth->sign("GET", target);
    if (from > 0) headers.insert(httplib::make_range_header({{static_cast<ssize_t>(from), -1}}));
    int status = 0;
    std::string error_body;
    std::vector<char> buffer;
    buffer.reserve(kWriteBuffer);
    std::uint64_t last_checkpoint = from;
    auto flush = [&] {
      file.write_at(buffer.data(), buffer.size(), offsets_[i] + done_[i]);
      done_[i] += buffer.size();
      received_ += buffer.size();
      buffer.clear();
      report(bytes_done(), total);
      if (done_[i] - last_checkpoint >= kCheckpointBytes) {
        save_progress();
        last_checkpoint = done_[i];
      }
    };
    auto res = client_.Get(
        target, headers,
        [&](const httplib::Response& r) {
          status = r.status;
          bool expected = from > 0 ? r.status == 206 : r.status == 200;
          if (expected && from > 0 &&
              !r.get_header_value("Content-Range").starts_with(fmt::format("bytes {}-", from))) {
            status = -1;  // a range we did not ask for
            return false;
          }
          return true;
        },
        [&](const char* data, std::size_t n) {
          bool ok_status = from > 0 ? status == 206 : status == 200;
          if (!ok_status) {
            if (error_body.size() < 500) error_body.append(data, std::min<std::size_t>(n, 500));
            return true;
          }
          if (done_[i] + buffer.size() + n > t.n_bytes) return false;
          buffer.insert(buffer.end(), data, data + n);
          if (buffer.size() >= kWriteBuffer) flush();
          return true;
        });
    if (!buffer.empty()) flush();
    if (status == -1) return "the server answered a different byte range than requested";
    if (status != 0 && status != (from > 0 ? 206 : 200)) {
      fail("coordinator {}: GET {} answered {}: {}", peer_, target, status, error_body);
    }
    if (!res) return "transfer interrupted (" + httplib::to_string(res.error()) + ")";
    if (done_[i] != t.n_bytes) {
      return fmt::format("transfer ended at byte {} of {}", done_[i], t.n_bytes);
    }
    return "";
  }

  const FetchOptions& o_;
  std::string peer_;
  httplib::Client client_;
  std::string key_;
  std::filesystem::path dir_, final_, manifest_path_, part_, progress_path_;
  ShardManifest manifest_;
  std::vector<std::uint64_t> offsets_;
  std::vector<std::uint64_t> done_;
  std::uint64_t file_size_ = 0;
  std::uint64_t resumed_ = 0;   // bytes already on disk when this call started
  std::uint64_t received_ = 0;  // bytes received by this call
};

}  // namespace

FetchResult fetch_shard(const FetchOptions& options) {
  return ShardFetch(options).run();
}

}  // namespace herd::cluster
