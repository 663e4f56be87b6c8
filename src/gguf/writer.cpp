// GGUF v3 writer; the layout is the one reader.cpp documents. Tensors are written in the order
// they were added, each at an offset that is a multiple of the alignment.
#include "gguf/writer.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

#include "util/error.h"

namespace herd::gguf {
namespace {

constexpr std::uint32_t kMagic = 0x46554747;  // "GGUF"
constexpr std::uint32_t kVersion = 3;
constexpr std::uint64_t kDefaultAlignment = 32;
constexpr const char* kAlignmentKey = "general.alignment";

std::uint64_t align_up(std::uint64_t n, std::uint64_t alignment) {
  return (n + alignment - 1) / alignment * alignment;
}

void check_alignment(std::uint64_t alignment) {
  if (alignment < kMinAlignment || !std::has_single_bit(alignment) ||
      alignment > std::numeric_limits<std::uint32_t>::max()) {
    fail_argument("GGUF alignment {} is not a power of two from {} (the spec's minimum) to 2^31",
                  alignment, kMinAlignment);
  }
}

class ByteSink {
 public:
  explicit ByteSink(std::vector<std::uint8_t>& out) : out_(out) {}

  template <typename T>
  void put(T v) {
    // resize + memcpy rather than insert(): g++ 12 warns falsely on the latter.
    std::size_t at = out_.size();
    out_.resize(at + sizeof(T));
    std::memcpy(out_.data() + at, &v, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<std::uint64_t>(s.size());
    std::size_t at = out_.size();
    out_.resize(at + s.size());
    if (!s.empty()) std::memcpy(out_.data() + at, s.data(), s.size());
  }

 private:
  std::vector<std::uint8_t>& out_;
};

// The integer held by `v`, checked to fit in [lo, hi].
template <typename T>
T checked_int(const std::string& key, const Value& v) {
  bool fits = false;
  T out{};
  if (const auto* i = std::get_if<std::int64_t>(&v.data)) {
    fits = std::in_range<T>(*i);
    out = static_cast<T>(*i);
  } else if (const auto* u = std::get_if<std::uint64_t>(&v.data)) {
    fits = std::in_range<T>(*u);
    out = static_cast<T>(*u);
  } else {
    fail_argument("metadata key '{}': a {} value must hold an integer", key,
                  value_type_name(v.type));
  }
  if (!fits) {
    fail_argument("metadata key '{}': value does not fit in {}", key, value_type_name(v.type));
  }
  return out;
}

double checked_float(const std::string& key, const Value& v) {
  if (const auto* d = std::get_if<double>(&v.data)) return *d;
  fail_argument("metadata key '{}': a {} value must hold a double", key, value_type_name(v.type));
}

void put_value(ByteSink& sink, const std::string& key, const Value& v) {
  switch (v.type) {
    case ValueType::kUint8:
      return sink.put(checked_int<std::uint8_t>(key, v));
    case ValueType::kInt8:
      return sink.put(checked_int<std::int8_t>(key, v));
    case ValueType::kUint16:
      return sink.put(checked_int<std::uint16_t>(key, v));
    case ValueType::kInt16:
      return sink.put(checked_int<std::int16_t>(key, v));
    case ValueType::kUint32:
      return sink.put(checked_int<std::uint32_t>(key, v));
    case ValueType::kInt32:
      return sink.put(checked_int<std::int32_t>(key, v));
    case ValueType::kUint64:
      return sink.put(checked_int<std::uint64_t>(key, v));
    case ValueType::kInt64:
      return sink.put(checked_int<std::int64_t>(key, v));
    case ValueType::kFloat32:
      return sink.put(static_cast<float>(checked_float(key, v)));
    case ValueType::kFloat64:
      return sink.put(checked_float(key, v));
    case ValueType::kBool:
      if (const auto* b = std::get_if<bool>(&v.data)) return sink.put<std::uint8_t>(*b ? 1 : 0);
      fail_argument("metadata key '{}': a bool value must hold a bool", key);
    case ValueType::kString:
      if (const auto* s = std::get_if<std::string>(&v.data)) return sink.put_string(*s);
      fail_argument("metadata key '{}': a string value must hold a string", key);
    case ValueType::kArray:
      break;
  }
  const auto* a = std::get_if<Array>(&v.data);
  if (v.type != ValueType::kArray || !a) {
    fail_argument("metadata key '{}': value type {} does not match its contents", key,
                  static_cast<std::uint32_t>(v.type));
  }
  sink.put(static_cast<std::uint32_t>(a->element_type));
  sink.put<std::uint64_t>(a->items.size());
  for (const Value& item : a->items) {
    if (item.type != a->element_type) {
      fail_argument("metadata key '{}': array of {} holds a {} item", key,
                    value_type_name(a->element_type), value_type_name(item.type));
    }
    put_value(sink, key, item);
  }
}

template <typename T>
Value int_array(ValueType element_type, const std::vector<T>& values, Value (*make)(T)) {
  std::vector<Value> items;
  items.reserve(values.size());
  for (T v : values) items.push_back(make(v));
  return Value::from_array(element_type, std::move(items));
}

}  // namespace

Writer::Writer(std::uint64_t alignment) : alignment_(alignment) {
  check_alignment(alignment);
}

void Writer::set(const std::string& key, Value value) {
  if (key == kAlignmentKey) {
    if (!value.is_integer()) fail_argument("general.alignment must be an integer");
    auto a = static_cast<std::uint64_t>(value.as_int());
    check_alignment(a);
    alignment_ = a;
    // The spec stores it as u32.
    value = Value::from_u32(static_cast<std::uint32_t>(a));
  }
  for (auto& [k, v] : kv_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  kv_.emplace_back(key, std::move(value));
}

void Writer::set_u32(const std::string& key, std::uint32_t v) {
  set(key, Value::from_u32(v));
}
void Writer::set_i32(const std::string& key, std::int32_t v) {
  set(key, Value::from_i32(v));
}
void Writer::set_u64(const std::string& key, std::uint64_t v) {
  set(key, Value::from_u64(v));
}
void Writer::set_f32(const std::string& key, float v) {
  set(key, Value::from_f32(v));
}
void Writer::set_bool(const std::string& key, bool v) {
  set(key, Value::from_bool(v));
}
void Writer::set_string(const std::string& key, const std::string& v) {
  set(key, Value::from_string(v));
}

void Writer::set_string_array(const std::string& key, const std::vector<std::string>& v) {
  std::vector<Value> items;
  items.reserve(v.size());
  for (const std::string& s : v) items.push_back(Value::from_string(s));
  set(key, Value::from_array(ValueType::kString, std::move(items)));
}

void Writer::set_f32_array(const std::string& key, const std::vector<float>& v) {
  set(key, int_array<float>(ValueType::kFloat32, v, &Value::from_f32));
}

void Writer::set_i32_array(const std::string& key, const std::vector<std::int32_t>& v) {
  set(key, int_array<std::int32_t>(ValueType::kInt32, v, &Value::from_i32));
}

void Writer::copy_metadata(const Metadata& metadata) {
  for (const auto& [key, value] : metadata.entries()) set(key, value);
}

void Writer::add_tensor(const std::string& name, tensor::Type type, std::vector<std::int64_t> dims,
                        std::span<const std::uint8_t> data) {
  for (const PendingTensor& t : tensors_) {
    if (t.name == name) fail_argument("tensor '{}' is added twice", name);
  }
  if (dims.empty() || dims.size() > 4) {
    fail_argument("tensor '{}': {} dimensions; GGUF allows 1 to 4", name, dims.size());
  }
  std::int64_t rows = 1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < 1) fail_argument("tensor '{}': dimension {} is {}", name, i, dims[i]);
    if (i > 0) {
      if (rows > std::numeric_limits<std::int64_t>::max() / dims[i]) {
        fail_argument("tensor '{}': element count overflows", name);
      }
      rows *= dims[i];
    }
  }
  const tensor::TypeTraits& tr = tensor::traits(type);
  if (dims[0] % tr.block_size != 0) {
    fail_argument("tensor '{}': row length {} is not a multiple of the {} block size {}", name,
                  dims[0], tr.name, tr.block_size);
  }
  std::uint64_t expected = tensor::row_bytes(type, dims[0]) * static_cast<std::uint64_t>(rows);
  if (data.size() != expected) {
    fail_argument("tensor '{}': {} bytes given, {} expected for {} of this shape", name,
                  data.size(), expected, tr.name);
  }
  tensors_.push_back({name, type, std::move(dims), {data.begin(), data.end()}});
}

void Writer::add_tensor_f32(const std::string& name, tensor::Type type,
                            std::vector<std::int64_t> dims, std::span<const float> values) {
  std::int64_t n = 1;
  for (std::int64_t d : dims) {
    if (d < 1 || n > std::numeric_limits<std::int64_t>::max() / d) {
      fail_argument("tensor '{}': dimension {} is not positive or overflows", name, d);
    }
    n *= d;
  }
  if (static_cast<std::uint64_t>(n) != values.size()) {
    fail_argument("tensor '{}': {} values given, the shape holds {}", name, values.size(), n);
  }
  const tensor::TypeTraits& tr = tensor::traits(type);
  if (dims.empty() || dims[0] % tr.block_size != 0) {
    fail_argument("tensor '{}': row length is not a multiple of the {} block size {}", name,
                  tr.name, tr.block_size);
  }
  std::vector<std::uint8_t> data(tensor::row_bytes(type, dims[0]) * (n / dims[0]));
  if (type == tensor::Type::kF32) {
    std::memcpy(data.data(), values.data(), data.size());
  } else if (tr.quantize) {
    tr.quantize(values.data(), data.data(), n);
  } else {
    fail_argument("tensor '{}': herd cannot quantize to {}; choose another type", name, tr.name);
  }
  add_tensor(name, type, std::move(dims), data);
}

std::vector<std::uint8_t> Writer::header_bytes() const {
  std::vector<std::uint8_t> out;
  ByteSink sink(out);
  bool write_alignment = alignment_ != kDefaultAlignment;
  for (const auto& [k, v] : kv_) write_alignment = write_alignment && k != kAlignmentKey;
  sink.put(kMagic);
  sink.put(kVersion);
  sink.put<std::uint64_t>(tensors_.size());
  sink.put<std::uint64_t>(kv_.size() + (write_alignment ? 1 : 0));
  for (const auto& [k, v] : kv_) {
    sink.put_string(k);
    sink.put(static_cast<std::uint32_t>(v.type));
    put_value(sink, k, v);
  }
  if (write_alignment) {
    sink.put_string(kAlignmentKey);
    sink.put(static_cast<std::uint32_t>(ValueType::kUint32));
    sink.put(static_cast<std::uint32_t>(alignment_));
  }
  std::uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    sink.put_string(t.name);
    sink.put<std::uint32_t>(t.dims.size());
    for (std::int64_t d : t.dims) sink.put<std::uint64_t>(d);
    sink.put(static_cast<std::uint32_t>(t.type));
    sink.put<std::uint64_t>(offset);
    offset = align_up(offset + t.data.size(), alignment_);
  }
  out.resize(align_up(out.size(), alignment_), 0);
  return out;
}

std::uint64_t Writer::size_bytes() const {
  std::uint64_t size = header_bytes().size();
  for (const PendingTensor& t : tensors_) size = align_up(size + t.data.size(), alignment_);
  return size;
}

std::vector<std::uint8_t> Writer::to_bytes() const {
  std::vector<std::uint8_t> out = header_bytes();
  for (const PendingTensor& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    out.resize(align_up(out.size(), alignment_), 0);
  }
  return out;
}

void Writer::write(const std::string& path) const {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("cannot create '{}': {}", tmp, std::strerror(errno));
  auto put = [&](const void* p, std::size_t n) {
    if (n > 0 && std::fwrite(p, 1, n, f) != n) {
      int err = errno;
      std::fclose(f);
      std::remove(tmp.c_str());
      fail("cannot write '{}': {}", tmp, std::strerror(err));
    }
  };
  std::vector<std::uint8_t> header = header_bytes();
  put(header.data(), header.size());
  static constexpr std::uint8_t kZeros[4096] = {};
  for (const PendingTensor& t : tensors_) {
    put(t.data.data(), t.data.size());
    for (std::uint64_t pad = align_up(t.data.size(), alignment_) - t.data.size(); pad > 0;) {
      std::size_t n = std::min<std::uint64_t>(pad, sizeof(kZeros));
      put(kZeros, n);
      pad -= n;
    }
  }
  if (std::fclose(f) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    fail("cannot finish writing '{}': {}", tmp, std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    fail("cannot rename '{}' to '{}': {}", tmp, path, std::strerror(err));
  }
}

}  // namespace herd::gguf
