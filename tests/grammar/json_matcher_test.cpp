#include "grammar/json_matcher.h"

#include <gtest/gtest.h>

#include <random>

#include "util/error.h"

namespace herd::grammar {
namespace {

using nlohmann::json;

// Whether `text` is a whole document of `schema` (fed byte by byte, then checked for accepting).
bool matches(const Schema& schema, std::string_view text) {
  JsonMatcher m(schema);
  return m.feed(text) && m.accepting();
}

bool prefix_ok(const Schema& schema, std::string_view text) {
  JsonMatcher m(schema);
  return m.feed(text);
}

const json kPerson = json::parse(R"({
  "type": "object",
  "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 8},
    "age": {"type": "integer"},
    "tags": {"type": "array", "items": {"enum": ["a", "ab", 3]}, "maxItems": 2},
    "pet": {"anyOf": [{"type": "null"}, {"type": "boolean"}, {"type": "number"}]}
  },
  "required": ["name", "age"],
  "additionalProperties": false
})");

TEST(JsonMatcher, AcceptsDocumentsOfTheSchemaInSortedPropertyOrder) {
  const Schema s = compile_schema(kPerson);
  EXPECT_TRUE(matches(s, R"({"age":41,"name":"Bo"})"));
  EXPECT_TRUE(matches(s, R"({"age":-7,"name":"\u00e9\n","pet":null,"tags":["ab",3]})"));
  EXPECT_TRUE(matches(s, R"({"age":0,"name":"x","pet":2.5e+3})"));
  EXPECT_TRUE(matches(s, "{\"age\":1,\"name\":\"\xc3\xa9t\xc3\xa9\"}"));  // UTF-8 "été"
}

TEST(JsonMatcher, RefusesWhatTheSchemaDoesNotAllowAtTheFirstWrongByte) {
  const Schema s = compile_schema(kPerson);
  EXPECT_FALSE(prefix_ok(s, R"({"name")"));   // sorted order: age comes first, and is required
  EXPECT_FALSE(prefix_ok(s, R"({"age":1.5)"));  // an integer
  EXPECT_FALSE(prefix_ok(s, R"({"age":01)"));   // no leading zeros
  EXPECT_FALSE(prefix_ok(s, R"({"age":1,"name":"")"));  // minLength 1
  EXPECT_FALSE(prefix_ok(s, R"({"age":1,"name":"123456789)"));  // maxLength 8
  EXPECT_FALSE(prefix_ok(s, R"({"age":1,"name":"a","tags":["b)"));  // not in the enum
  EXPECT_FALSE(prefix_ok(s, R"({"age":1,"name":"a","tags":[3,3,3)"));  // maxItems 2
  EXPECT_FALSE(prefix_ok(s, R"({"age":1,"name":"a","color")"));  // additionalProperties false
  EXPECT_FALSE(prefix_ok(s, R"({"age":1,"name":"a"} )"));  // nothing after the document
  EXPECT_FALSE(prefix_ok(s, R"({ "age")"));  // compact: no whitespace
  EXPECT_FALSE(prefix_ok(s, "{\"age\":1,\"name\":\"\x01"));  // control characters are escaped
  EXPECT_FALSE(prefix_ok(s, "{\"age\":1,\"name\":\"\xc3("));  // broken UTF-8
  EXPECT_FALSE(prefix_ok(s, R"({"age":1,"name":"\x)"));  // no such escape
  EXPECT_FALSE(matches(s, R"({"age":1})"));  // name is required
  EXPECT_FALSE(matches(s, R"({"age":1,"name":"a")"));  // not closed
}

TEST(JsonMatcher, AnEnumValueThatIsThePrefixOfAnotherMayEndOrGoOn) {
  const Schema s = compile_schema(json::parse(R"({"type":"array","items":{"enum":["a","ab"]}})"));
  EXPECT_TRUE(matches(s, R"(["a","ab","a"])"));
  const Schema n = compile_schema(json::parse(R"({"enum":[1,12]})"));
  JsonMatcher m(n);
  ASSERT_TRUE(m.feed("1"));
  EXPECT_TRUE(m.accepting());
  EXPECT_FALSE(m.complete());  // "12" is still possible
  ASSERT_TRUE(m.feed("2"));
  EXPECT_TRUE(m.complete());
}

TEST(JsonMatcher, FreeObjectsTakeAnyJsonObject) {
  const Schema s = any_object_schema();
  EXPECT_TRUE(matches(s, R"({})"));
  EXPECT_TRUE(matches(s, R"({"a":[1,{"b":null}],"c":"d","e":true,"f":-0.5E-7})"));
  EXPECT_FALSE(prefix_ok(s, R"([)"));  // an object, not any value
  EXPECT_FALSE(prefix_ok(s, R"({"a":tru3)"));
  // Free values nest only so deep, so that a rambling model is bounded.
  std::string deep = R"({"a":)";
  for (int i = 0; i < JsonMatcher::kMaxFreeDepth; ++i) deep += "[";
  EXPECT_FALSE(prefix_ok(s, deep));
}

TEST(JsonMatcher, MinRemainingIsWhatTheShortestEndingNeeds) {
  const Schema s = compile_schema(kPerson);
  JsonMatcher m(s);
  EXPECT_EQ(m.min_remaining(), static_cast<int>(std::string(R"({"age":0,"name":"x"})").size()));
  ASSERT_TRUE(m.feed(R"({"age":12)"));
  EXPECT_EQ(m.min_remaining(), static_cast<int>(std::string(R"(,"name":"x"})").size()));
  ASSERT_TRUE(m.feed(R"(,"name":"Al)"));
  EXPECT_EQ(m.min_remaining(), 2);  // "}
  ASSERT_TRUE(m.feed(R"("})"));
  EXPECT_EQ(m.min_remaining(), 0);
  EXPECT_TRUE(m.complete());
}

// The sampler's guarantee: with a budget of bytes at least min_remaining() at the start, always
// picking (at random) a byte that keeps min_remaining() within what is left finishes a document
// within the budget — from any schema, on every path.
void random_documents_finish(const json& schema_json, int slack, int trials) {
  const Schema s = compile_schema(schema_json);
  std::mt19937 rng(1234);
  for (int t = 0; t < trials; ++t) {
    JsonMatcher m(s);
    const int budget = m.min_remaining() + slack;
    std::string text;
    while (!m.complete()) {
      const int left = budget - static_cast<int>(text.size());
      std::vector<unsigned char> ok;
      for (int c = 0; c < 256; ++c) {
        JsonMatcher next = m;
        if (next.feed(static_cast<unsigned char>(c)) && next.min_remaining() <= left - 1)
          ok.push_back(static_cast<unsigned char>(c));
      }
      if (ok.empty()) {
        ASSERT_TRUE(m.accepting()) << "stuck after " << text;
        break;  // a whole document that could go on (a number): end it here
      }
      const unsigned char c = ok[std::uniform_int_distribution<std::size_t>(0, ok.size() - 1)(rng)];
      ASSERT_TRUE(m.feed(c));
      text += static_cast<char>(c);
    }
    ASSERT_LE(static_cast<int>(text.size()), budget);
    const json parsed = json::parse(text, nullptr, false);
    ASSERT_FALSE(parsed.is_discarded()) << text;
  }
}

TEST(JsonMatcher, EveryPathFinishesWithinTheBudget) {
  random_documents_finish(kPerson, 40, 200);
  random_documents_finish(json::parse(R"({"type":"object"})"), 60, 200);
  random_documents_finish(
      json::parse(R"({"type":"array","minItems":2,"items":{"type":["string","integer"]}})"), 20, 200);
  random_documents_finish(json::parse(R"({
    "$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                        "required": ["x", "y"]}},
    "type": "object", "properties": {"a": {"$ref": "#/$defs/point"}, "b": {"$ref": "#/$defs/point"}},
    "required": ["b"]})"), 30, 200);
}

TEST(JsonSchema, RefusesWhatItCannotEnforceNamingWhere) {
  auto error = [](const char* schema) {
    try {
      compile_schema(json::parse(schema));
    } catch (const InvalidArgument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(error(R"({"type":"object","properties":{"n":{"type":"integer","minimum":3}}})")
                .find("properties.n.minimum"),
            std::string::npos);
  EXPECT_NE(error(R"({"type":"strin"})").find("unknown type"), std::string::npos);
  EXPECT_NE(error(R"({"$ref":"#/$defs/x"})").find("not found"), std::string::npos);
  EXPECT_NE(error(R"({"$defs":{"x":{"$ref":"#/$defs/x"}},"$ref":"#/$defs/x"})").find("recursive"),
            std::string::npos);
  EXPECT_NE(error(R"({"type":"object","required":["x"]})").find("'x'"), std::string::npos);
  EXPECT_NE(error(R"([1])").find("must be an object"), std::string::npos);
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += R"({"type":"array","items":)";
  deep += "{}";
  for (int i = 0; i < 100; ++i) deep += "}";
  EXPECT_NE(error(deep.c_str()).find("nests deeper"), std::string::npos);
}

}  // namespace
}  // namespace herd::grammar
