// A worker's side of weight transfer: fetches the shard of its layer range from the coordinator's
// WeightServer into its data dir and returns the shard's path. Tensor bytes are written straight
// to their place in a temporary shard file; each tensor is checked against the manifest's SHA-256;
// per-tensor progress is kept beside it so that an interrupted fetch resumes (HTTP Range) instead
// of starting over; the shard is renamed into place only when complete. A shard already in the
// data dir that matches its manifest is used without any network traffic.
//
// Data dir layout: shards/<key>.gguf, shards/<key>.manifest.json while complete;
// shards/<key>.gguf.part, shards/<key>.progress.json while in flight (key: shard_plan.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "cluster/weights/weight_auth.h"
#include "model/model.h"

namespace herd::cluster {

// (bytes done, bytes total) over the shard's tensors.
using FetchProgress = std::function<void(std::uint64_t, std::uint64_t)>;

struct FetchOptions {
  std::string host;  // the coordinator
  int port = 0;
  std::string model_hash;
  model::LayerRange range;
  std::filesystem::path data_dir;
  FetchProgress progress;
  // Signs requests and checks the manifest's MAC; null when the server does not authenticate.
  std::shared_ptr<const HttpAuth> auth;
  // Tries per tensor (a dropped connection resumes where it stopped; a checksum mismatch
  // refetches the tensor) before the fetch fails. Progress is kept: calling again resumes.
  int max_attempts = 3;
  int timeout_s = 30;  // connect and per-read timeout
};

struct FetchResult {
  std::filesystem::path path;        // the shard GGUF
  bool from_cache = false;           // true: no network traffic
  std::uint64_t bytes_received = 0;  // tensor bytes received by this call
};

// Throws herd::Error naming the peer (host:port) and the tensor on failure.
FetchResult fetch_shard(const FetchOptions& options);

}  // namespace herd::cluster
