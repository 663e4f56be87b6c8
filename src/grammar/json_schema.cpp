#include "grammar/json_schema.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <set>
#include <tuple>
#include <utility>

#include "util/error.h"

namespace herd::grammar {

using json = nlohmann::ordered_json;

namespace {

// Keywords that describe or annotate without constraining what is written.
const std::set<std::string> kIgnored = {"description", "title",    "default", "examples",
                                        "$schema",     "$id",      "format",  "strict",
                                        "$comment",    "readOnly", "writeOnly", "deprecated"};
// Followed by their own keywords (below), never refused.
const std::set<std::string> kKnown = {
    "type",     "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
    "enum",     "const",      "anyOf",    "oneOf",                "minLength", "maxLength",
    "$ref",     "$defs",      "definitions"};

// Limits that keep the matcher's states small; beyond them a schema is refused, not weakened.
constexpr std::size_t kMaxLiterals = 64;
constexpr std::size_t kMaxProperties = 64;
constexpr int kMaxNodes = 4096;
constexpr int kMaxRefDepth = 32;
constexpr int kMaxNesting = 64;  // schemas inside schemas: a bound on the compiler's recursion

class Compiler {
 public:
  explicit Compiler(const json& root) : root_(root) {}

  Schema run() {
    Schema s;
    schema_ = &s;
    s.root = compile(root_, "", 0);
    // A node is added after its children, so one pass in order sees every child's figure first.
    for (auto& n : s.nodes) n.min_chars = min_chars(n);
    return s;
  }

 private:
  [[noreturn]] static void refuse(const std::string& path, const std::string& what) {
    fail_argument("JSON schema{}{}: {}", path.empty() ? "" : " at ", path, what);
  }

  int add(SchemaNode node) {
    if (static_cast<int>(schema_->nodes.size()) >= kMaxNodes)
      refuse("", fmt::format("more than {} parts", kMaxNodes));
    schema_->nodes.push_back(std::move(node));
    return static_cast<int>(schema_->nodes.size()) - 1;
  }

  static std::string child(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

  int non_negative(const json& s, const char* key, const std::string& path, int fallback) {
    if (!s.contains(key)) return fallback;
    const json& v = s[key];
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > INT_MAX)
      refuse(child(path, key), "must be a non-negative integer");
    return static_cast<int>(v.get<std::int64_t>());
  }

  // A minimum (default 0) and a maximum (default -1: none) that must not be below it.
  std::pair<int, int> bounds(const json& s, const char* min_key, const char* max_key,
                             const std::string& path) {
    const int lo = non_negative(s, min_key, path, 0);
    const int hi = non_negative(s, max_key, path, -1);
    if (hi >= 0 && hi < lo) refuse(path, fmt::format("{} is below {}", max_key, min_key));
    return {lo, hi};
  }

  const json& resolve(const std::string& ref, const std::string& path) {
    for (const char* prefix : {"#/$defs/", "#/definitions/"}) {
      const std::string p = prefix;
      if (ref.rfind(p, 0) != 0) continue;
      const std::string name = ref.substr(p.size());
      const std::string section = p.substr(2, p.size() - 3);  // "$defs" or "definitions"
      if (!root_.is_object() || !root_.contains(section) || !root_[section].is_object() ||
          !root_[section].contains(name))
        refuse(path, "$ref " + ref + " not found");
      return root_[section][name];
    }
    refuse(path, "$ref " + ref + ": only #/$defs/NAME and #/definitions/NAME are supported");
  }

  int compile(const json& s, const std::string& path, int ref_depth) {
    struct Nesting {  // counts how deep compile() recurses
      explicit Nesting(int& d) : depth(++d) {}
      ~Nesting() { --depth; }
      int& depth;
    } nesting(nesting_);
    if (nesting_ > kMaxNesting) refuse(path, fmt::format("nests deeper than {} levels", kMaxNesting));
    if (s.is_boolean()) {
      if (!s.get<bool>()) refuse(path, "the schema false allows nothing");
      return add({});
    }
    if (!s.is_object()) refuse(path, "a schema must be an object");
    for (const auto& [key, value] : s.items()) {
      if (!kIgnored.count(key) && !kKnown.count(key))
        refuse(child(path, key), "the keyword '" + key + "' is not supported");
    }
    if (s.contains("$ref")) {
      if (!s["$ref"].is_string()) refuse(child(path, "$ref"), "must be a string");
      if (ref_depth >= kMaxRefDepth) refuse(path, "$ref nests too deep (a recursive schema?)");
      return compile(resolve(s["$ref"].get<std::string>(), path), path, ref_depth + 1);
    }
    if (s.contains("const")) return literals({s["const"]}, path);
    if (s.contains("enum")) {
      const json& e = s["enum"];
      if (!e.is_array() || e.empty()) refuse(child(path, "enum"), "must be a non-empty array");
      return literals(std::vector<json>(e.begin(), e.end()), child(path, "enum"));
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!s.contains(key)) continue;
      const json& list = s[key];
      if (!list.is_array() || list.empty()) refuse(child(path, key), "must be a non-empty array");
      SchemaNode n;
      n.kind = SchemaNode::Kind::kAnyOf;
      for (std::size_t i = 0; i < list.size(); ++i)
        n.options.push_back(compile(list[i], child(path, fmt::format("{}[{}]", key, i)), ref_depth));
      return add(std::move(n));
    }
    if (!s.contains("type")) {
      // No type: an object schema when it lists properties, else any value.
      if (s.contains("properties")) return typed(s, "object", path, ref_depth);
      return add({});
    }
    const json& type = s["type"];
    if (type.is_string()) return typed(s, type.get<std::string>(), path, ref_depth);
    if (!type.is_array() || type.empty())
      refuse(child(path, "type"), "must be a type name or a non-empty list of them");
    SchemaNode n;
    n.kind = SchemaNode::Kind::kAnyOf;
    for (const auto& t : type) {
      if (!t.is_string()) refuse(child(path, "type"), "must list type names");
      n.options.push_back(typed(s, t.get<std::string>(), path, ref_depth));
    }
    return add(std::move(n));
  }

  int literals(const std::vector<json>& values, const std::string& path) {
    if (values.size() > kMaxLiterals)
      refuse(path, fmt::format("more than {} values are not supported", kMaxLiterals));
    SchemaNode n;
    n.kind = SchemaNode::Kind::kLiterals;
    for (const auto& v : values) n.literals.push_back(v.dump(-1, ' ', false));
    return add(std::move(n));
  }

  int typed(const json& s, const std::string& type, const std::string& path, int ref_depth) {
    SchemaNode n;
    if (type == "string") {
      n.kind = SchemaNode::Kind::kString;
      std::tie(n.min_length, n.max_length) = bounds(s, "minLength", "maxLength", path);
      return add(std::move(n));
    }
    if (type == "number") return add({.kind = SchemaNode::Kind::kNumber});
    if (type == "integer") return add({.kind = SchemaNode::Kind::kInteger});
    if (type == "boolean") return literals({true, false}, path);
    if (type == "null") return literals({nullptr}, path);
    if (type == "array") {
      n.kind = SchemaNode::Kind::kArray;
      std::tie(n.min_items, n.max_items) = bounds(s, "minItems", "maxItems", path);
      if (s.contains("items")) {
        if (s["items"].is_array()) refuse(child(path, "items"), "tuple items are not supported");
        n.items = compile(s["items"], child(path, "items"), ref_depth);
      }
      return add(std::move(n));
    }
    if (type == "object") {
      n.kind = SchemaNode::Kind::kObject;
      std::set<std::string> required;
      if (s.contains("required")) {
        if (!s["required"].is_array()) refuse(child(path, "required"), "must be a list of names");
        for (const auto& r : s["required"]) {
          if (!r.is_string()) refuse(child(path, "required"), "must be a list of names");
          required.insert(r.get<std::string>());
        }
      }
      if (s.contains("properties")) {
        const json& props = s["properties"];
        if (!props.is_object()) refuse(child(path, "properties"), "must be an object");
        if (props.size() > kMaxProperties)
          refuse(child(path, "properties"),
                 fmt::format("more than {} properties are not supported", kMaxProperties));
        // In the order the client wrote them (ordered_json keeps it): a model fills them in the
        // order it was told about them.
        for (const auto& [key, value] : props.items()) {
          SchemaNode::Property p;
          p.key_json = json(key).dump(-1, ' ', false);
          p.required = required.count(key) > 0;
          required.erase(key);
          p.node = -1;
          n.properties.push_back(p);
        }
        std::size_t i = 0;
        for (const auto& [key, value] : props.items())
          n.properties[i++].node = compile(value, child(path, "properties." + key), ref_depth);
      }
      if (!required.empty())
        refuse(child(path, "required"), "'" + *required.begin() + "' is not among the properties");
      // additionalProperties: with properties listed, only they are written (what strict
      // schemas ask for, and valid for any other); with none listed, free keys and values.
      if (s.contains("additionalProperties")) {
        const json& a = s["additionalProperties"];
        if (!a.is_boolean() && !a.is_object())
          refuse(child(path, "additionalProperties"), "must be a boolean or a schema");
      }
      n.free_properties = n.properties.empty() &&
                          !(s.contains("additionalProperties") &&
                            s["additionalProperties"].is_boolean() &&
                            !s["additionalProperties"].get<bool>());
      return add(std::move(n));
    }
    refuse(child(path, "type"), "unknown type '" + type + "'");
  }

  int min_chars(const SchemaNode& n) const {
    const auto& nodes = schema_->nodes;
    auto of = [&](int i) { return i < 0 ? 1 : nodes[static_cast<std::size_t>(i)].min_chars; };
    switch (n.kind) {
      case SchemaNode::Kind::kAny:
      case SchemaNode::Kind::kNumber:
      case SchemaNode::Kind::kInteger:
        return 1;
      case SchemaNode::Kind::kString:
        return 2 + n.min_length;
      case SchemaNode::Kind::kLiterals: {
        std::size_t best = SIZE_MAX;
        for (const auto& l : n.literals) best = std::min(best, l.size());
        return static_cast<int>(best);
      }
      case SchemaNode::Kind::kAnyOf: {
        int best = INT_MAX;
        for (int o : n.options) best = std::min(best, of(o));
        return best;
      }
      case SchemaNode::Kind::kArray:
        return 2 + n.min_items * of(n.items) + std::max(0, n.min_items - 1);
      case SchemaNode::Kind::kObject: {
        int total = 2, members = 0;
        for (const auto& p : n.properties) {
          if (!p.required) continue;
          total += static_cast<int>(p.key_json.size()) + 1 + of(p.node);
          ++members;
        }
        return total + std::max(0, members - 1);
      }
    }
    return 1;
  }

  const json& root_;
  Schema* schema_ = nullptr;
  int nesting_ = 0;
};

}  // namespace

Schema compile_schema(const json& schema) {
  return Compiler(schema).run();
}

Schema any_object_schema() {
  Schema s;
  SchemaNode n;
  n.kind = SchemaNode::Kind::kObject;
  n.free_properties = true;
  n.min_chars = 2;
  s.nodes.push_back(n);
  return s;
}

}  // namespace herd::grammar
