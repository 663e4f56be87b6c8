// Metadata lookups. Every error names the key, so that a model with a wrongly typed or missing
// hyper-parameter tells the user which one.
#include <utility>

#include "gguf/reader.h"
#include "util/error.h"

namespace herd::gguf {
namespace {

// Runs a Value conversion, re-throwing its error with the key in front.
template <typename Fn>
auto convert(std::string_view key, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const FormatError& e) {
    fail_format("metadata key '{}': {}", key, e.what());
  }
}

}  // namespace

void Metadata::set(std::string key, Value value) {
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    it->second = std::move(value);
  } else {
    entries_.emplace(std::move(key), std::move(value));
  }
}

bool Metadata::has(std::string_view key) const {
  return entries_.find(key) != entries_.end();
}

const Value* Metadata::find(std::string_view key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

std::optional<std::int64_t> Metadata::get_int(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  return convert(key, [&] { return v->as_int(); });
}

std::optional<double> Metadata::get_float(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  return convert(key, [&] { return v->as_float(); });
}

std::optional<bool> Metadata::get_bool(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  return convert(key, [&] { return v->as_bool(); });
}

std::optional<std::string> Metadata::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  return convert(key, [&] { return v->as_string(); });
}

std::int64_t Metadata::require_int(std::string_view key) const {
  auto v = get_int(key);
  if (!v) fail_format("required metadata key '{}' (integer) is missing from the model file", key);
  return *v;
}

double Metadata::require_float(std::string_view key) const {
  auto v = get_float(key);
  if (!v) fail_format("required metadata key '{}' (number) is missing from the model file", key);
  return *v;
}

std::string Metadata::require_string(std::string_view key) const {
  auto v = get_string(key);
  if (!v) fail_format("required metadata key '{}' (string) is missing from the model file", key);
  return *v;
}

std::optional<std::vector<std::string>> Metadata::get_string_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  return convert(key, [&] {
    std::vector<std::string> out;
    const Array& a = v->as_array();
    out.reserve(a.items.size());
    for (const Value& item : a.items) out.push_back(item.as_string());
    return out;
  });
}

std::optional<std::vector<float>> Metadata::get_float_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  return convert(key, [&] {
    std::vector<float> out;
    const Array& a = v->as_array();
    out.reserve(a.items.size());
    for (const Value& item : a.items) out.push_back(static_cast<float>(item.as_float()));
    return out;
  });
}

std::optional<std::vector<std::int64_t>> Metadata::get_int_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  return convert(key, [&] {
    std::vector<std::int64_t> out;
    const Array& a = v->as_array();
    out.reserve(a.items.size());
    for (const Value& item : a.items) out.push_back(item.as_int());
    return out;
  });
}

}  // namespace herd::gguf
