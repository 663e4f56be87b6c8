// GGUF metadata values (GGUF spec, "gguf_metadata_value_type").
#pragma once

#include <cstdint>
#include <string>
#include <utility>
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

  // Typed constructors, so that callers state the GGUF width explicitly.
  static Value from_u8(std::uint8_t v) { return {ValueType::kUint8, std::uint64_t{v}}; }
  static Value from_i8(std::int8_t v) { return {ValueType::kInt8, std::int64_t{v}}; }
  static Value from_u16(std::uint16_t v) { return {ValueType::kUint16, std::uint64_t{v}}; }
  static Value from_i16(std::int16_t v) { return {ValueType::kInt16, std::int64_t{v}}; }
  static Value from_u32(std::uint32_t v) { return {ValueType::kUint32, std::uint64_t{v}}; }
  static Value from_i32(std::int32_t v) { return {ValueType::kInt32, std::int64_t{v}}; }
  static Value from_u64(std::uint64_t v) { return {ValueType::kUint64, v}; }
  static Value from_i64(std::int64_t v) { return {ValueType::kInt64, v}; }
  static Value from_f32(float v) { return {ValueType::kFloat32, double{v}}; }
  static Value from_f64(double v) { return {ValueType::kFloat64, v}; }
  static Value from_bool(bool v) { return {ValueType::kBool, v}; }
  static Value from_string(std::string v) { return {ValueType::kString, std::move(v)}; }
  // Every item must have type `element_type` (checked when written).
  static Value from_array(ValueType element_type, std::vector<Value> items) {
    return {ValueType::kArray, Array{element_type, std::move(items)}};
  }
};

// Structural equality (same type, same payload), used by tests and copy checks.
bool operator==(const Value& a, const Value& b);
inline bool operator==(const Array& a, const Array& b) {
  return a.element_type == b.element_type && a.items == b.items;
}

}  // namespace herd::gguf
