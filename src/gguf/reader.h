// Reads GGUF files (versions 2 and 3), memory-mapped. Everything is validated before use:
// a corrupt or truncated file is rejected with a herd::FormatError that names the problem,
// never a crash. Tensor data is used in place, never copied.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/value.h"
#include "tensor/type.h"
#include "util/mapped_file.h"

namespace herd::gguf {

// The smallest general.alignment a file may declare (the GGUF spec asks for a multiple of 8). The
// kernels rely on it: with tensors at least 8-aligned, every row is aligned to its elements
// (float rows to 4 bytes; blocks, of even size, to the 2 of their 16-bit scales).
inline constexpr std::uint64_t kMinAlignment = 8;

struct TensorInfo {
  std::string name;
  tensor::Type type = tensor::Type::kF32;
  // GGML order: dims[0] is the fastest-varying (row length), dims[1] the number of rows, ...
  std::vector<std::int64_t> dims;
  std::uint64_t offset = 0;   // relative to the start of the data section
  std::uint64_t n_bytes = 0;  // size of the data
  std::int64_t n_elements = 0;

  std::int64_t dim(int i) const { return i < static_cast<int>(dims.size()) ? dims[i] : 1; }
};

class Metadata {
 public:
  void set(std::string key, Value value);
  bool has(std::string_view key) const;
  const Value* find(std::string_view key) const;
  const std::map<std::string, Value, std::less<>>& entries() const { return entries_; }

  // Optional lookups: nullopt when absent; FormatError when present with an incompatible type.
  std::optional<std::int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  // Required lookups: FormatError naming the key when absent.
  std::int64_t require_int(std::string_view key) const;
  double require_float(std::string_view key) const;
  std::string require_string(std::string_view key) const;
  // Arrays of a given kind (empty optional when absent).
  std::optional<std::vector<std::string>> get_string_array(std::string_view key) const;
  std::optional<std::vector<float>> get_float_array(std::string_view key) const;
  std::optional<std::vector<std::int64_t>> get_int_array(std::string_view key) const;

 private:
  std::map<std::string, Value, std::less<>> entries_;
};

class File {
 public:
  // Maps and parses a file. Throws herd::Error (open failure) or herd::FormatError.
  static File open(const std::string& path);
  // Parses bytes owned by the caller (they must outlive the File). For tests and fuzzing.
  static File parse(std::span<const std::uint8_t> bytes, std::string name = "<memory>");

  std::uint32_t version() const { return version_; }
  const std::string& path() const { return name_; }
  const Metadata& metadata() const { return metadata_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  std::uint64_t alignment() const { return alignment_; }
  std::uint64_t data_offset() const { return data_offset_; }  // absolute, in the file
  std::span<const std::uint8_t> bytes() const { return bytes_; }
  // Pointer to a tensor's data (validated to lie inside the file).
  const std::uint8_t* tensor_data(const TensorInfo& info) const;
  // Architecture prefix, e.g. "llama" (general.architecture). FormatError when absent.
  std::string architecture() const;
  // The mapping, when opened from a path (null for parse()).
  const MappedFile* mapping() const { return mapping_.get(); }

 private:
  std::shared_ptr<MappedFile> mapping_;
  std::span<const std::uint8_t> bytes_;
  std::string name_;
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = 32;
  std::uint64_t data_offset_ = 0;
  Metadata metadata_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::size_t, std::less<>> tensor_index_;
};

}  // namespace herd::gguf
