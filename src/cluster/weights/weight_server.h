// The coordinator's side of weight transfer: serves, over the control plane's HTTP server, the
// manifest of any stage's shard, the model's metadata, and tensor bytes (with HTTP Range, so an
// interrupted transfer resumes). Bytes are sent straight from the model's mapping.
//
//   GET /v1/weights/<model_hash>/manifest?first=A&last=B   JSON (shard_file.h), MAC-signed
//   GET /v1/weights/<model_hash>/metadata                  the metadata as a tensorless GGUF
//   GET /v1/weights/<model_hash>/tensors/<name>            raw bytes; Range: bytes=N- resumes
#pragma once

#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cluster/weights/file_hash.h"
#include "cluster/weights/shard_file.h"
#include "cluster/weights/weight_auth.h"
#include "gguf/reader.h"
#include "model/model.h"

namespace herd::cluster {

// Test hook called with each chunk of tensor bytes before it is sent (`offset` is the chunk's
// position in the tensor): it may change the bytes (to simulate corruption) or return false to
// drop the connection (to simulate a dead link).
using TransferHook =
    std::function<bool(const std::string& tensor, std::uint64_t offset, std::string& chunk)>;

struct WeightServerOptions {
  // Null: every request is served (single machine, tests). Else requests it rejects get 401.
  RequestVerifier verify;
  // When set, manifests carry an X-Herd-Mac the fetcher checks (the same secret as `verify`).
  std::shared_ptr<const HttpAuth> response_auth;
  TransferHook hook;
  std::size_t chunk_bytes = 1 << 20;
};

class WeightServer {
 public:
  // `digest` must be the digest of `file` (FileHashCache::get).
  WeightServer(std::shared_ptr<const gguf::File> file, std::shared_ptr<const FileDigest> digest,
               WeightServerOptions options = {});

  const std::string& model_hash() const { return digest_->identity; }
  int n_layer() const { return n_layer_; }
  // Throws InvalidArgument for a range outside the model.
  ShardManifest manifest(model::LayerRange range) const;
  const std::string& metadata_gguf() const { return metadata_gguf_; }

  // Counters, for tests and the dashboard.
  std::uint64_t tensor_requests() const { return tensor_requests_.load(); }
  std::uint64_t ranged_requests() const { return ranged_requests_.load(); }
  std::uint64_t bytes_sent() const { return bytes_sent_.load(); }

 private:
  friend void register_weight_routes(httplib::Server&, std::shared_ptr<WeightServer>);
  bool authorize(const httplib::Request& request, httplib::Response& response) const;
  void handle_manifest(const httplib::Request& request, httplib::Response& response) const;
  void handle_tensor(const httplib::Request& request, httplib::Response& response);

  std::shared_ptr<const gguf::File> file_;
  std::shared_ptr<const FileDigest> digest_;
  WeightServerOptions options_;
  int n_layer_ = 0;
  std::string metadata_gguf_;
  std::string metadata_sha256_;
  std::atomic<std::uint64_t> tensor_requests_{0};
  std::atomic<std::uint64_t> ranged_requests_{0};
  std::atomic<std::uint64_t> bytes_sent_{0};
};

// Adds the routes above to `server`; `weights` stays alive as long as the routes.
void register_weight_routes(httplib::Server& server, std::shared_ptr<WeightServer> weights);

}  // namespace herd::cluster
