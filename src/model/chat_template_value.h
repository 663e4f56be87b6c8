// Values of the small Jinja interpreter behind chat templates. They follow Python/Jinja2
// semantics as Hugging Face's apply_chat_template sees them: lists and dicts are shared by
// reference (so `namespace()` objects can be mutated inside loops), dicts keep insertion order
// (tojson prints keys in the order they were given), and Undefined is distinct from None.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace herd::model::jinja {

class Value;
using Array = std::vector<Value>;

struct Object {
  std::vector<std::pair<std::string, Value>> items;  // insertion order, keys unique

  const Value* find(std::string_view key) const;
  void set(std::string key, Value value);
};

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kArray, kObject };

  Value() = default;  // Undefined
  static Value none();
  Value(bool b) : data_(b) {}
  Value(int i) : data_(static_cast<std::int64_t>(i)) {}
  Value(std::int64_t i) : data_(i) {}
  Value(double d) : data_(d) {}
  Value(std::string s) : data_(std::move(s)) {}
  Value(const char* s) : data_(std::string(s)) {}
  Value(Array a) : data_(std::make_shared<Array>(std::move(a))) {}
  Value(Object o) : data_(std::make_shared<Object>(std::move(o))) {}

  Kind kind() const { return static_cast<Kind>(data_.index()); }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_number() const { return kind() == Kind::kInt || kind() == Kind::kFloat; }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_array() const { return kind() == Kind::kArray; }
  bool is_object() const { return kind() == Kind::kObject; }

  bool as_bool() const { return std::get<bool>(data_); }
  std::int64_t as_int() const { return std::get<std::int64_t>(data_); }
  double as_number() const;  // int or float (bool counts as 0/1, as in Python)
  const std::string& as_string() const { return std::get<std::string>(data_); }
  Array& as_array() const { return *std::get<std::shared_ptr<Array>>(data_); }
  Object& as_object() const { return *std::get<std::shared_ptr<Object>>(data_); }

  bool truthy() const;
  // Python str(): what `{{ x }}` prints. Undefined prints nothing.
  std::string to_string() const;
  // Python repr(): strings quoted; used inside printed lists and dicts.
  std::string repr() const;
  // json.dumps(x, ensure_ascii=False, indent=indent) as HF's `tojson` filter does; indent < 0:
  // none.
  std::string to_json(int indent = -1) const;
  const char* type_name() const;

 private:
  struct NoneTag {};
  std::variant<std::monostate, NoneTag, bool, std::int64_t, double, std::string,
               std::shared_ptr<Array>, std::shared_ptr<Object>>
      data_;
};

// Python ==, with 1 == 1.0 == True.
bool equals(const Value& a, const Value& b);

}  // namespace herd::model::jinja
