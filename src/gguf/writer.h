// Writes GGUF v3 files: used by tests (synthetic and corrupt models), the synthetic-model tool,
// and the cluster (a node's shard of a model is stored as a GGUF of its own tensors).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "gguf/reader.h"
#include "gguf/value.h"
#include "tensor/type.h"

namespace herd::gguf {

class Writer {
 public:
  // Throws herd::InvalidArgument unless alignment is a power of two, at least kMinAlignment.
  explicit Writer(std::uint64_t alignment = 32);

  std::uint64_t alignment() const { return alignment_; }

  // Adds or replaces a key (order of first insertion is kept). Setting "general.alignment"
  // changes the alignment the file is written with.
  void set(const std::string& key, Value value);
  void set_u32(const std::string& key, std::uint32_t v);
  void set_i32(const std::string& key, std::int32_t v);
  void set_u64(const std::string& key, std::uint64_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, const std::string& v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);
  void set_i32_array(const std::string& key, const std::vector<std::int32_t>& v);
  // Copies every key of `metadata` (e.g. to carry a model's tokenizer into a new file).
  void copy_metadata(const Metadata& metadata);

  // dims in GGML order (dims[0] fastest). `data` must hold exactly row_bytes(type, dims[0]) *
  // (product of the other dims) bytes; it is copied.
  void add_tensor(const std::string& name, tensor::Type type, std::vector<std::int64_t> dims,
                  std::span<const std::uint8_t> data);
  // Convenience: quantizes f32 values to `type` (needs a quantizer for that type).
  void add_tensor_f32(const std::string& name, tensor::Type type, std::vector<std::int64_t> dims,
                      std::span<const float> values);

  std::vector<std::uint8_t> to_bytes() const;
  // Size in bytes that to_bytes() / write() will produce.
  std::uint64_t size_bytes() const;
  // Streams to disk (writes a temporary file and renames it, so a crash leaves no half file).
  void write(const std::string& path) const;

 private:
  // Header, metadata, tensor infos and the padding before the data section.
  std::vector<std::uint8_t> header_bytes() const;

  struct PendingTensor {
    std::string name;
    tensor::Type type;
    std::vector<std::int64_t> dims;
    std::vector<std::uint8_t> data;
  };
  std::uint64_t alignment_;
  std::vector<std::pair<std::string, Value>> kv_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace herd::gguf
