// Element types of GGUF tensors and their block layouts. One row of the table per type:
// a new format is one new row (type_table.cpp), never new switch arms elsewhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace herd::tensor {

// Values are GGML's type ids as stored in GGUF files (ggml.h, enum ggml_type).
enum class Type : std::uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
};

// Converts `count` elements (a whole number of blocks) of this type to float.
using DequantizeFn = void (*)(const void* src, float* dst, std::int64_t count);
// Converts `count` floats (a whole number of blocks) to this type (reference quantizer).
using QuantizeFn = void (*)(const float* src, void* dst, std::int64_t count);

struct TypeTraits {
  Type type;
  std::string_view name;    // as llama.cpp prints it: "q4_K", "f16" ...
  std::int64_t block_size;  // elements per block (1 for plain types)
  std::size_t block_bytes;  // bytes per block
  bool supported;           // herd can compute with it (dequantize + dot)
  DequantizeFn dequantize;  // null when unsupported
  QuantizeFn quantize;      // null when herd cannot write it
};

// nullopt for an id that is not a known GGML type.
std::optional<Type> type_from_id(std::uint32_t id);
// Traits of a known type. Throws herd::Error for ids outside the table.
const TypeTraits& traits(Type type);
std::string_view type_name(Type type);
// Parses "q4_0", "Q4_K", "f16" ... (case-insensitive); nullopt when unknown.
std::optional<Type> type_from_name(std::string_view name);

// Bytes of a row of n elements. Precondition: n is a multiple of the block size.
std::size_t row_bytes(Type type, std::int64_t n);

// Table lookups with checks: herd::Error when the type has no converter, InvalidArgument when
// count is not a whole number of blocks.
void dequantize(Type type, const void* src, float* dst, std::int64_t count);
void quantize(Type type, const float* src, void* dst, std::int64_t count);

}  // namespace herd::tensor
