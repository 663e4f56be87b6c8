// A stage's shard: a GGUF v3 file holding the tensors of its layer range with all of the original
// file's metadata, so that model::Model::load(file, range) binds it like the whole model. The
// manifest (what the coordinator says the shard holds) is kept beside the shard in the data dir.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gguf/reader.h"
#include "model/model.h"
#include "tensor/type.h"

namespace herd::cluster {

struct ManifestTensor {
  std::string name;
  tensor::Type type = tensor::Type::kF32;
  std::vector<std::int64_t> dims;  // GGML order
  std::uint64_t n_bytes = 0;
  std::string sha256;  // 64 hex digits over the tensor's bytes
};

struct ShardManifest {
  std::string model_hash;
  model::LayerRange range;
  int n_layer = 0;
  // The original metadata travels as a GGUF file without tensors (GET .../metadata).
  std::uint64_t metadata_bytes = 0;
  std::string metadata_sha256;
  std::vector<ManifestTensor> tensors;

  std::uint64_t tensor_bytes() const;
};

nlohmann::json manifest_to_json(const ShardManifest& manifest);
// Validates everything a peer could get wrong (types, shapes against byte sizes, names usable in
// a URL, hex digests) and throws FormatError naming `source` and the problem.
ShardManifest manifest_from_json(const nlohmann::json& json, const std::string& source);
bool same_manifest(const ShardManifest& a, const ShardManifest& b);

// Where the header ends and each tensor starts in the shard file.
struct ShardLayout {
  std::vector<std::uint8_t> header;    // magic .. tensor infos, padded to the alignment
  std::vector<std::uint64_t> offsets;  // absolute file offset of each tensor, manifest order
  std::uint64_t file_size = 0;
};

// The GGUF layout of a shard with `metadata` (general.alignment honoured, 32 when absent) and the
// manifest's tensors in order, so that tensor bytes can be written straight to their place as they
// arrive (no second copy of a multi-GB shard).
ShardLayout layout_shard(const gguf::Metadata& metadata,
                         const std::vector<ManifestTensor>& tensors);

// Whether the GGUF at `path` holds exactly the manifest's tensors with matching types, shapes and
// SHA-256 digests. Reads the whole shard. Fills `reason` when it does not.
bool verify_shard(const std::filesystem::path& path, const ShardManifest& manifest,
                  std::string& reason);

}  // namespace herd::cluster
