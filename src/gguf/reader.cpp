// GGUF parsing. Layout (GGUF spec, ggml/docs/gguf.md, versions 2 and 3):
//   u32 magic "GGUF", u32 version, u64 tensor_count, u64 kv_count,
//   kv_count x { string key, u32 value_type, value },
//   tensor_count x { string name, u32 n_dims, u64 dims[n_dims], u32 ggml_type, u64 offset },
//   padding to `general.alignment` (default 32), then the data section.
// Strings are u64 length + bytes (no terminator). Everything is little-endian.
// Every count and length is checked against the bytes that remain before anything is allocated.
#include "gguf/reader.h"

#include <bit>
#include <cstring>
#include <limits>
#include <utility>

#include "util/error.h"

namespace herd::gguf {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the GGUF reader assumes a little-endian host");

constexpr std::uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr std::uint64_t kDefaultAlignment = 32;
constexpr std::uint64_t kMaxAlignment = std::uint64_t{1} << 30;
constexpr int kMaxArrayDepth = 8;  // nested arrays deeper than this are certainly corrupt
constexpr int kMaxDims = 4;        // GGML_MAX_DIMS
// Smallest encodings, used to bound counts before allocating.
constexpr std::uint64_t kMinKvBytes = 8 + 4 + 1;  // key length, type, 1-byte value
constexpr std::uint64_t kMinTensorInfoBytes =
    8 + 4 + 8 + 4 + 8;  // name len, n_dims, 1 dim, type, offset

class Cursor {
 public:
  Cursor(std::span<const std::uint8_t> bytes, const std::string& name)
      : bytes_(bytes), name_(name) {}

  std::uint64_t pos() const { return pos_; }
  std::uint64_t remaining() const { return bytes_.size() - pos_; }

  void need(std::uint64_t n, std::string_view what) const {
    if (n > remaining()) {
      fail_format(
          "{}: truncated while reading {}: needs {} bytes at byte {} but only {} remain"
          " — the file is truncated or corrupt (re-download it)",
          name_, what, n, pos_, remaining());
    }
  }

  // Fails fast when `count` items of at least `min_bytes` each cannot fit in what is left, so a
  // corrupt count never turns into a huge allocation.
  void need_items(std::uint64_t count, std::uint64_t min_bytes, std::string_view what) const {
    if (count > remaining() / min_bytes) {
      fail_format(
          "{}: {} claims {} entries at byte {} but only {} bytes remain — the file is "
          "corrupt or truncated",
          name_, what, count, pos_, remaining());
    }
  }

  template <typename T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(std::string_view what) {
    auto len = read<std::uint64_t>(what);
    need(len, what);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), len);
    pos_ += len;
    return s;
  }

  const std::string& name() const { return name_; }

 private:
  std::span<const std::uint8_t> bytes_;
  const std::string& name_;
  std::uint64_t pos_ = 0;
};

std::uint64_t min_value_bytes(ValueType type) {
  switch (type) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool:
      return 1;
    case ValueType::kUint16:
    case ValueType::kInt16:
      return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32:
      return 4;
    case ValueType::kUint64:
    case ValueType::kInt64:
    case ValueType::kFloat64:
    case ValueType::kString:  // the u64 length
      return 8;
    case ValueType::kArray:  // u32 element type + u64 count
      return 12;
  }
  return 1;
}

ValueType read_value_type(Cursor& c, std::string_view key) {
  auto id = c.read<std::uint32_t>("a value type");
  if (id > static_cast<std::uint32_t>(ValueType::kFloat64)) {
    fail_format(
        "{}: metadata key '{}' has unknown value type {} (known: 0..12) — the file is "
        "corrupt or from a newer GGUF revision",
        c.name(), key, id);
  }
  return static_cast<ValueType>(id);
}

Value read_value(Cursor& c, ValueType type, const std::string& key, int depth) {
  switch (type) {
    case ValueType::kUint8:
      return {type, std::uint64_t{c.read<std::uint8_t>(key)}};
    case ValueType::kInt8:
      return {type, std::int64_t{c.read<std::int8_t>(key)}};
    case ValueType::kUint16:
      return {type, std::uint64_t{c.read<std::uint16_t>(key)}};
    case ValueType::kInt16:
      return {type, std::int64_t{c.read<std::int16_t>(key)}};
    case ValueType::kUint32:
      return {type, std::uint64_t{c.read<std::uint32_t>(key)}};
    case ValueType::kInt32:
      return {type, std::int64_t{c.read<std::int32_t>(key)}};
    case ValueType::kUint64:
      return {type, c.read<std::uint64_t>(key)};
    case ValueType::kInt64:
      return {type, c.read<std::int64_t>(key)};
    case ValueType::kFloat32:
      return {type, double{c.read<float>(key)}};
    case ValueType::kFloat64:
      return {type, c.read<double>(key)};
    // ggml writes bools as one byte; any non-zero byte reads as true, as in ggml.
    case ValueType::kBool:
      return {type, c.read<std::uint8_t>(key) != 0};
    case ValueType::kString:
      return {type, c.read_string(key)};
    case ValueType::kArray:
      break;
  }
  Array array;
  array.element_type = read_value_type(c, key);
  if (array.element_type == ValueType::kArray && depth + 1 >= kMaxArrayDepth) {
    fail_format("{}: metadata key '{}' nests arrays more than {} deep — the file is corrupt",
                c.name(), key, kMaxArrayDepth);
  }
  auto count = c.read<std::uint64_t>(key);
  c.need_items(count, min_value_bytes(array.element_type), "array '" + key + "'");
  array.items.reserve(count);
  for (std::uint64_t i = 0; i < count; ++i) {
    array.items.push_back(read_value(c, array.element_type, key, depth + 1));
  }
  return {type, std::move(array)};
}

std::uint32_t read_version(Cursor& c) {
  if (c.remaining() < 4) {
    fail_format("{}: {} bytes is too small to be a GGUF file — it is empty or truncated", c.name(),
                c.remaining());
  }
  auto magic = c.read<std::uint32_t>("the magic");
  if (magic != kMagic) {
    fail_format(
        "{}: not a GGUF file (magic is 0x{:08x}, expected \"GGUF\"); convert the model "
        "with llama.cpp's convert_hf_to_gguf.py",
        c.name(), magic);
  }
  auto version = c.read<std::uint32_t>("the version");
  if (version == 1) {
    fail_format(
        "{}: GGUF version 1 is too old (32-bit counts, before August 2023); re-convert "
        "the model with a current llama.cpp",
        c.name());
  }
  if (version == 0x02000000 || version == 0x03000000) {
    fail_format("{}: this is a big-endian GGUF file; herd reads little-endian files only",
                c.name());
  }
  if (version != 2 && version != 3) {
    fail_format("{}: unsupported GGUF version {} (herd reads versions 2 and 3)", c.name(), version);
  }
  return version;
}

void read_metadata(Cursor& c, Metadata& metadata) {
  auto n_kv = c.read<std::uint64_t>("the key-value count");
  c.need_items(n_kv, kMinKvBytes, "the key-value count");
  for (std::uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.read_string("a metadata key");
    if (metadata.has(key)) {
      fail_format("{}: metadata key '{}' appears twice — the file is corrupt", c.name(), key);
    }
    ValueType type = read_value_type(c, key);
    Value value = read_value(c, type, key, 0);
    metadata.set(std::move(key), std::move(value));
  }
}

std::uint64_t read_alignment(const Metadata& metadata, const std::string& name) {
  const Value* v = metadata.find("general.alignment");
  if (!v) return kDefaultAlignment;
  if (!v->is_integer()) {
    fail_format("{}: general.alignment must be an integer, found a {}", name,
                value_type_name(v->type));
  }
  std::int64_t a = v->as_int();
  if (a < static_cast<std::int64_t>(kMinAlignment) ||
      !std::has_single_bit(static_cast<std::uint64_t>(a)) ||
      static_cast<std::uint64_t>(a) > kMaxAlignment) {
    fail_format("{}: general.alignment is {}; it must be a power of two from {} to {}", name, a,
                kMinAlignment, kMaxAlignment);
  }
  return static_cast<std::uint64_t>(a);
}

// Validates the shape and type of one tensor and fills dims, n_elements and n_bytes.
void read_tensor_shape(Cursor& c, TensorInfo& t, std::uint64_t file_size) {
  auto n_dims = c.read<std::uint32_t>("tensor dimensions");
  if (n_dims < 1 || n_dims > static_cast<std::uint32_t>(kMaxDims)) {
    fail_format("{}: tensor '{}' has {} dimensions; GGUF allows 1 to {} — the file is corrupt",
                c.name(), t.name, n_dims, kMaxDims);
  }
  std::int64_t n_elements = 1;
  for (std::uint32_t d = 0; d < n_dims; ++d) {
    auto dim = c.read<std::int64_t>("a tensor dimension");
    if (dim < 1) {
      fail_format("{}: tensor '{}' has dimension {} = {}; every dimension must be at least 1",
                  c.name(), t.name, d, dim);
    }
    if (n_elements > std::numeric_limits<std::int64_t>::max() / dim) {
      fail_format(
          "{}: tensor '{}' has an absurd element count (dimensions overflow 64 bits) — "
          "the file is corrupt",
          c.name(), t.name);
    }
    n_elements *= dim;
    t.dims.push_back(dim);
  }
  t.n_elements = n_elements;

  auto type_id = c.read<std::uint32_t>("a tensor type");
  auto type = tensor::type_from_id(type_id);
  if (!type) {
    fail_format(
        "{}: tensor '{}' has GGML type id {}, which herd does not know; re-quantize the "
        "model to a supported type (f32, f16, bf16, q4_0, q8_0, q4_K, q6_K ...)",
        c.name(), t.name, type_id);
  }
  t.type = *type;
  const tensor::TypeTraits& tr = tensor::traits(*type);
  HERD_CHECK(tr.block_size > 0 && tr.block_bytes > 0);
  if (t.dims[0] % tr.block_size != 0) {
    fail_format(
        "{}: tensor '{}' has rows of {} elements, not a multiple of the {} block size {}"
        " — the file is corrupt",
        c.name(), t.name, t.dims[0], tr.name, tr.block_size);
  }
  // Bytes = blocks per row * block bytes * rows, each step checked so that absurd shapes cannot
  // wrap around; anything larger than the file is rejected later anyway.
  auto blocks = static_cast<std::uint64_t>(n_elements / tr.block_size);
  if (blocks > file_size / tr.block_bytes) {
    fail_format(
        "{}: tensor '{}' ({} elements of {}) is larger than the whole file ({} bytes) — "
        "the file is truncated or corrupt",
        c.name(), t.name, n_elements, tr.name, file_size);
  }
  t.n_bytes = blocks * tr.block_bytes;
}

void read_tensor_infos(Cursor& c, std::uint64_t n_tensors, std::vector<TensorInfo>& tensors,
                       std::map<std::string, std::size_t, std::less<>>& index,
                       std::uint64_t alignment, std::uint64_t file_size) {
  c.need_items(n_tensors, kMinTensorInfoBytes, "the tensor count");
  tensors.reserve(n_tensors);
  for (std::uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo t;
    t.name = c.read_string("a tensor name");
    if (index.count(t.name)) {
      fail_format("{}: tensor '{}' appears twice — the file is corrupt", c.name(), t.name);
    }
    read_tensor_shape(c, t, file_size);
    t.offset = c.read<std::uint64_t>("a tensor offset");
    if (t.offset % alignment != 0) {
      fail_format(
          "{}: tensor '{}' starts at data offset {}, not a multiple of the alignment {} "
          "— the file is corrupt",
          c.name(), t.name, t.offset, alignment);
    }
    index.emplace(t.name, tensors.size());
    tensors.push_back(std::move(t));
  }
}

}  // namespace

File File::open(const std::string& path) {
  auto mapping = std::make_shared<MappedFile>(path);
  File file = parse(mapping->bytes(), path);
  file.mapping_ = std::move(mapping);
  return file;
}

File File::parse(std::span<const std::uint8_t> bytes, std::string name) {
  File f;
  f.name_ = std::move(name);
  f.bytes_ = bytes;
  Cursor c(bytes, f.name_);
  f.version_ = read_version(c);
  auto n_tensors = c.read<std::uint64_t>("the tensor count");
  read_metadata(c, f.metadata_);
  f.alignment_ = read_alignment(f.metadata_, f.name_);
  read_tensor_infos(c, n_tensors, f.tensors_, f.tensor_index_, f.alignment_, bytes.size());

  // The data section starts at the next multiple of the alignment (alignment <= 2^30, pos <= file
  // size, so this cannot overflow).
  std::uint64_t pos = c.pos();
  f.data_offset_ = (pos + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  std::uint64_t size = bytes.size();
  for (const TensorInfo& t : f.tensors_) {
    // n_bytes is already known to be at most the file size; compare without overflowing.
    std::uint64_t room = f.data_offset_ <= size ? size - f.data_offset_ : 0;
    if (t.offset > room) {
      fail_format(
          "{}: tensor '{}': data starts at data offset {} but the data section has {} "
          "bytes — the file is truncated (re-download it)",
          f.name_, t.name, t.offset, room);
    }
    if (t.n_bytes > room - t.offset) {
      fail_format(
          "{}: tensor '{}': data ends at byte {} but the file has {} bytes — the file is "
          "truncated (re-download it)",
          f.name_, t.name, f.data_offset_ + t.offset + t.n_bytes, size);
    }
  }
  return f;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const std::uint8_t* File::tensor_data(const TensorInfo& info) const {
  std::uint64_t size = bytes_.size();
  if (data_offset_ > size || info.offset > size - data_offset_ ||
      info.n_bytes > size - data_offset_ - info.offset) {
    fail_format("{}: tensor '{}' lies outside the file", name_, info.name);
  }
  return bytes_.data() + data_offset_ + info.offset;
}

std::string File::architecture() const {
  auto arch = metadata_.get_string("general.architecture");
  if (!arch) {
    fail_format("{}: general.architecture is missing; this GGUF does not describe a model", name_);
  }
  return *arch;
}

}  // namespace herd::gguf
