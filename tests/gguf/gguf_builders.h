// Helpers for the GGUF tests: a small valid file made by our Writer, and a raw byte builder for
// files the Writer refuses to make (wrong versions, absurd counts, bad offsets ...).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "gguf/writer.h"

namespace herd::gguf::testing {

// Appends little-endian GGUF primitives.
class RawGguf {
 public:
  RawGguf& u32(std::uint32_t v) { return put(v); }
  RawGguf& u64(std::uint64_t v) { return put(v); }
  RawGguf& i64(std::int64_t v) { return put(v); }
  RawGguf& str(const std::string& s) {
    u64(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
    return *this;
  }
  // magic, version, tensor count, kv count
  RawGguf& header(std::uint32_t version, std::uint64_t n_tensors, std::uint64_t n_kv) {
    bytes.insert(bytes.end(), {'G', 'G', 'U', 'F'});
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  RawGguf& kv_u32(const std::string& key, std::uint32_t v) {
    return str(key).u32(static_cast<std::uint32_t>(ValueType::kUint32)).u32(v);
  }
  RawGguf& tensor_info(const std::string& name, const std::vector<std::int64_t>& dims,
                       std::uint32_t type, std::uint64_t offset) {
    str(name).u32(static_cast<std::uint32_t>(dims.size()));
    for (std::int64_t d : dims) i64(d);
    return u32(type).u64(offset);
  }
  RawGguf& pad_to(std::size_t alignment) {
    while (bytes.size() % alignment) bytes.push_back(0);
    return *this;
  }
  RawGguf& zeros(std::size_t n) {
    bytes.resize(bytes.size() + n, 0);
    return *this;
  }

  std::vector<std::uint8_t> bytes;

 private:
  template <typename T>
  RawGguf& put(T v) {
    std::size_t at = bytes.size();
    bytes.resize(at + sizeof(T));
    std::memcpy(bytes.data() + at, &v, sizeof(T));
    return *this;
  }
};

// A small model-like file: scalar keys, a string array, a nested array, and three tensors of
// different types (f32, f16, q8_0), raw bytes filled with a pattern.
inline Writer sample_writer(std::uint64_t alignment = 32) {
  Writer w(alignment);
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.embedding_length", 64);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "hello"});
  w.set("nested", Value::from_array(ValueType::kArray,
                                    {Value::from_array(ValueType::kUint8, {Value::from_u8(1)}),
                                     Value::from_array(ValueType::kUint8, {})}));
  auto pattern = [](std::size_t n, std::uint8_t seed) {
    std::vector<std::uint8_t> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(seed + i * 7);
    return v;
  };
  w.add_tensor("a.f32", tensor::Type::kF32, {8, 2}, pattern(8 * 2 * 4, 1));
  w.add_tensor("b.f16", tensor::Type::kF16, {5}, pattern(5 * 2, 2));
  // Q8_0: 32 elements per 34-byte block; f16 scales of pattern bytes are whatever they are.
  w.add_tensor("c.q8_0", tensor::Type::kQ8_0, {64, 3}, pattern(2 * 34 * 3, 3));
  return w;
}

}  // namespace herd::gguf::testing
