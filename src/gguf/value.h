// GGUF metadata values (GGUF spec, "gguf_metadata_value_type").
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace herd::gguf {

enum class ValueType : std::uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

const char* value_type_name(ValueType type);

// Arrays keep their element type; nested arrays are allowed by the spec and kept as such.
struct Value;
struct Array {
  ValueType element_type = ValueType::kUint8;
  std::vector<Value> items;
};

struct Value {
  ValueType type = ValueType::kUint8;
  // Integers (any width, any signedness) are held as int64 / uint64, floats as double.
  std::variant<std::int64_t, std::uint64_t, double, bool, std::string, Array> data;

  bool is_integer() const;
  bool is_float() const;
  bool is_string() const { return type == ValueType::kString; }
  bool is_array() const { return type == ValueType::kArray; }
  // Conversions throw herd::FormatError when the value is not of a compatible kind.
  std::int64_t as_int() const;
  double as_float() const;  // integers convert too
  bool as_bool() const;
  const std::string& as_string() const;
  const Array& as_array() const;
};

}  // namespace herd::gguf
