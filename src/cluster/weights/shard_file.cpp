#include "cluster/weights/shard_file.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "cluster/weights/file_hash.h"
#include "util/error.h"

namespace herd::cluster {
namespace {

constexpr std::uint32_t kMagic = 0x46554747;  // "GGUF", little-endian
constexpr std::uint32_t kVersion = 3;
constexpr std::uint64_t kDefaultAlignment = 32;

bool is_hex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool is_url_safe_name(const std::string& s) {
  return !s.empty() && s.size() <= 256 && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

// Little-endian serialization as in the GGUF spec (the writer and reader assume a little-endian
// host too).
class Bytes {
 public:
  template <typename T>
  void put(T v) {
    std::size_t at = out.size();
    out.resize(at + sizeof(T));
    std::memcpy(out.data() + at, &v, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<std::uint64_t>(s.size());
    out.insert(out.end(), s.begin(), s.end());
  }
  void put_value(const gguf::Value& v) {
    using gguf::ValueType;
    switch (v.type) {
      case ValueType::kUint8:
        return put(static_cast<std::uint8_t>(v.as_int()));
      case ValueType::kInt8:
        return put(static_cast<std::int8_t>(v.as_int()));
      case ValueType::kUint16:
        return put(static_cast<std::uint16_t>(v.as_int()));
      case ValueType::kInt16:
        return put(static_cast<std::int16_t>(v.as_int()));
      case ValueType::kUint32:
        return put(static_cast<std::uint32_t>(v.as_int()));
      case ValueType::kInt32:
        return put(static_cast<std::int32_t>(v.as_int()));
      case ValueType::kUint64:
        return put(std::get<std::uint64_t>(v.data));
      case ValueType::kInt64:
        return put(std::get<std::int64_t>(v.data));
      case ValueType::kFloat32:
        return put(static_cast<float>(v.as_float()));
      case ValueType::kFloat64:
        return put(v.as_float());
      case ValueType::kBool:
        return put<std::uint8_t>(v.as_bool() ? 1 : 0);
      case ValueType::kString:
        return put_string(v.as_string());
      case ValueType::kArray: {
        const gguf::Array& a = v.as_array();
        put(static_cast<std::uint32_t>(a.element_type));
        put<std::uint64_t>(a.items.size());
        for (const gguf::Value& item : a.items) put_value(item);
        return;
      }
    }
    fail_format("metadata value of unknown type {}", static_cast<std::uint32_t>(v.type));
  }
  std::vector<std::uint8_t> out;
};

std::uint64_t align_up(std::uint64_t n, std::uint64_t a) {
  return (n + a - 1) / a * a;
}

}  // namespace

std::uint64_t ShardManifest::tensor_bytes() const {
  std::uint64_t n = 0;
  for (const auto& t : tensors) n += t.n_bytes;
  return n;
}

nlohmann::json manifest_to_json(const ShardManifest& m) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& t : m.tensors) {
    tensors.push_back({{"name", t.name},
                       {"type", static_cast<std::uint32_t>(t.type)},
                       {"dims", t.dims},
                       {"n_bytes", t.n_bytes},
                       {"sha256", t.sha256}});
  }
  return {{"model_hash", m.model_hash},
          {"first", m.range.first},
          {"last", m.range.last},
          {"n_layer", m.n_layer},
          {"metadata_bytes", m.metadata_bytes},
          {"metadata_sha256", m.metadata_sha256},
          {"tensors", tensors}};
}

ShardManifest manifest_from_json(const nlohmann::json& j, const std::string& source) {
  ShardManifest m;
  try {
    m.model_hash = j.at("model_hash").get<std::string>();
    m.range = {j.at("first").get<int>(), j.at("last").get<int>()};
    m.n_layer = j.at("n_layer").get<int>();
    m.metadata_bytes = j.at("metadata_bytes").get<std::uint64_t>();
    m.metadata_sha256 = j.at("metadata_sha256").get<std::string>();
    for (const auto& jt : j.at("tensors")) {
      ManifestTensor t;
      t.name = jt.at("name").get<std::string>();
      auto type = tensor::type_from_id(jt.at("type").get<std::uint32_t>());
      if (!type)
        fail_format("{}: tensor {} has unknown type id {}", source, t.name, jt.at("type").dump());
      t.type = *type;
      t.dims = jt.at("dims").get<std::vector<std::int64_t>>();
      t.n_bytes = jt.at("n_bytes").get<std::uint64_t>();
      t.sha256 = jt.at("sha256").get<std::string>();
      m.tensors.push_back(std::move(t));
    }
  } catch (const nlohmann::json::exception& e) {
    fail_format("{}: malformed shard manifest: {}", source, e.what());
  }
  if (m.range.first < 0 || m.range.first >= m.range.last || m.range.last > m.n_layer) {
    fail_format("{}: manifest range [{}, {}) does not fit {} layers", source, m.range.first,
                m.range.last, m.n_layer);
  }
  if (!is_hex64(m.metadata_sha256))
    fail_format("{}: manifest metadata_sha256 is not a SHA-256", source);
  for (const auto& t : m.tensors) {
    if (!is_url_safe_name(t.name))
      fail_format("{}: manifest tensor name '{}' is not usable", source, t.name);
    if (!is_hex64(t.sha256)) fail_format("{}: tensor {} has no valid sha256", source, t.name);
    if (t.dims.empty() || t.dims.size() > 4 ||
        std::any_of(t.dims.begin(), t.dims.end(),
                    [](std::int64_t d) { return d <= 0 || d > (1ll << 40); })) {
      fail_format("{}: tensor {} has invalid dims", source, t.name);
    }
    // Size from the shape, as the GGUF reader will check it when the shard is opened.
    std::uint64_t rows = 1;
    for (std::size_t i = 1; i < t.dims.size(); ++i) rows *= static_cast<std::uint64_t>(t.dims[i]);
    if (t.dims[0] % tensor::traits(t.type).block_size != 0 ||
        t.n_bytes != tensor::row_bytes(t.type, t.dims[0]) * rows) {
      fail_format("{}: tensor {} claims {} bytes, which does not match its type and shape", source,
                  t.name, t.n_bytes);
    }
  }
  return m;
}

bool same_manifest(const ShardManifest& a, const ShardManifest& b) {
  return manifest_to_json(a) == manifest_to_json(b);
}

ShardLayout layout_shard(const gguf::Metadata& metadata,
                         const std::vector<ManifestTensor>& tensors) {
  std::uint64_t alignment = kDefaultAlignment;
  if (auto a = metadata.get_int("general.alignment")) {
    if (*a <= 0 || !std::has_single_bit(static_cast<std::uint64_t>(*a))) {
      fail_format("general.alignment {} is not a power of two", *a);
    }
    alignment = static_cast<std::uint64_t>(*a);
  }
  Bytes b;
  b.put(kMagic);
  b.put(kVersion);
  b.put<std::uint64_t>(tensors.size());
  b.put<std::uint64_t>(metadata.entries().size());
  for (const auto& [key, value] : metadata.entries()) {
    b.put_string(key);
    b.put(static_cast<std::uint32_t>(value.type));
    b.put_value(value);
  }
  std::vector<std::uint64_t> relative;
  std::uint64_t data_size = 0;
  for (const auto& t : tensors) {
    b.put_string(t.name);
    b.put(static_cast<std::uint32_t>(t.dims.size()));
    for (std::int64_t d : t.dims) b.put(static_cast<std::uint64_t>(d));
    b.put(static_cast<std::uint32_t>(t.type));
    data_size = align_up(data_size, alignment);
    b.put(data_size);
    relative.push_back(data_size);
    data_size += t.n_bytes;
  }
  ShardLayout layout;
  layout.header = std::move(b.out);
  layout.header.resize(align_up(layout.header.size(), alignment), 0);
  for (std::uint64_t r : relative) layout.offsets.push_back(layout.header.size() + r);
  layout.file_size = layout.header.size() + data_size;
  return layout;
}

bool verify_shard(const std::filesystem::path& path, const ShardManifest& manifest,
                  std::string& reason) {
  try {
    gguf::File file = gguf::File::open(path.string());
    if (file.tensors().size() != manifest.tensors.size()) {
      reason = fmt::format("holds {} tensors, the manifest {}", file.tensors().size(),
                           manifest.tensors.size());
      return false;
    }
    for (const auto& t : manifest.tensors) {
      const gguf::TensorInfo* info = file.find_tensor(t.name);
      if (!info || info->type != t.type || info->dims != t.dims || info->n_bytes != t.n_bytes) {
        reason = fmt::format("tensor {} is missing or has another type or shape", t.name);
        return false;
      }
      if (sha256_hex({file.tensor_data(*info), info->n_bytes}) != t.sha256) {
        reason = fmt::format("tensor {} does not match its SHA-256 (the file is corrupt)", t.name);
        return false;
      }
    }
    return true;
  } catch (const Error& e) {
    reason = e.what();
    return false;
  }
}

}  // namespace herd::cluster
