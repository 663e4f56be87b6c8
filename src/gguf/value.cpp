#include "gguf/value.h"

#include <limits>

#include "util/error.h"

namespace herd::gguf {

const char* value_type_name(ValueType type) {
  switch (type) {
    case ValueType::kUint8:
      return "uint8";
    case ValueType::kInt8:
      return "int8";
    case ValueType::kUint16:
      return "uint16";
    case ValueType::kInt16:
      return "int16";
    case ValueType::kUint32:
      return "uint32";
    case ValueType::kInt32:
      return "int32";
    case ValueType::kFloat32:
      return "float32";
    case ValueType::kBool:
      return "bool";
    case ValueType::kString:
      return "string";
    case ValueType::kArray:
      return "array";
    case ValueType::kUint64:
      return "uint64";
    case ValueType::kInt64:
      return "int64";
    case ValueType::kFloat64:
      return "float64";
  }
  return "unknown";
}

bool Value::is_integer() const {
  switch (type) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kUint16:
    case ValueType::kInt16:
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kUint64:
    case ValueType::kInt64:
      return true;
    default:
      return false;
  }
}

bool Value::is_float() const {
  return type == ValueType::kFloat32 || type == ValueType::kFloat64;
}

std::int64_t Value::as_int() const {
  if (const auto* i = std::get_if<std::int64_t>(&data)) return *i;
  if (const auto* u = std::get_if<std::uint64_t>(&data)) {
    if (*u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      fail_format("integer value {} does not fit in int64", *u);
    }
    return static_cast<std::int64_t>(*u);
  }
  fail_format("expected an integer, found a {} value", value_type_name(type));
}

double Value::as_float() const {
  if (const auto* d = std::get_if<double>(&data)) return *d;
  if (const auto* i = std::get_if<std::int64_t>(&data)) return static_cast<double>(*i);
  if (const auto* u = std::get_if<std::uint64_t>(&data)) return static_cast<double>(*u);
  fail_format("expected a number, found a {} value", value_type_name(type));
}

bool Value::as_bool() const {
  if (const auto* b = std::get_if<bool>(&data)) return *b;
  fail_format("expected a bool, found a {} value", value_type_name(type));
}

const std::string& Value::as_string() const {
  if (const auto* s = std::get_if<std::string>(&data)) return *s;
  fail_format("expected a string, found a {} value", value_type_name(type));
}

const Array& Value::as_array() const {
  if (const auto* a = std::get_if<Array>(&data)) return *a;
  fail_format("expected an array, found a {} value", value_type_name(type));
}

bool operator==(const Value& a, const Value& b) {
  return a.type == b.type && a.data == b.data;
}

}  // namespace herd::gguf
