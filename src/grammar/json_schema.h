// A JSON Schema, compiled into the tree the constrained sampler walks (json_matcher.h). The
// subset is what OpenAI's structured outputs, tool parameters and Ollama's `format` use:
//   type (one or a list), properties, required, additionalProperties, items, minItems, maxItems,
//   enum, const, anyOf / oneOf, minLength, maxLength, $ref to #/$defs/... or #/definitions/...
//   (not recursive); description, title, default, examples, format, $schema, strict are ignored.
// Anything else is refused with an error naming the keyword and where it is, so a schema is
// never silently enforced only in part.
//
// What the sampler then writes is compact JSON (no whitespace), properties in the schema's order
// (each optional one may be left out), numbers of at most 15 digits before and after the point
// and 3 in the exponent.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace herd::grammar {

struct SchemaNode {
  enum class Kind { kAny, kObject, kArray, kString, kNumber, kInteger, kLiterals, kAnyOf };
  Kind kind = Kind::kAny;

  struct Property {
    std::string key_json;  // the key as written, quotes included: "\"name\""
    int node = -1;
    bool required = false;
  };
  std::vector<Property> properties;  // kObject, in the schema's order
  bool free_properties = false;      // kObject: other keys with any value (no properties listed)

  int items = -1;  // kArray: the items' node (-1: any value)
  int min_items = 0;
  int max_items = -1;  // -1: no limit

  int min_length = 0;   // kString, in characters
  int max_length = -1;  // -1: no limit

  std::vector<std::string> literals;  // kLiterals: each allowed value as compact JSON
  std::vector<int> options;           // kAnyOf

  int min_chars = 1;  // the shortest JSON text of a value of this node
};

struct Schema {
  std::vector<SchemaNode> nodes;
  int root = 0;
  const SchemaNode& node(int i) const { return nodes[static_cast<std::size_t>(i)]; }
};

// Throws herd::InvalidArgument naming the keyword and its path (e.g. "properties.age.minimum")
// for what the subset does not cover, or a malformed schema.
Schema compile_schema(const nlohmann::ordered_json& schema);

// Any JSON object (OpenAI's response_format json_object, Ollama's format "json").
Schema any_object_schema();

}  // namespace herd::grammar
