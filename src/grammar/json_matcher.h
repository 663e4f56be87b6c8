// Which texts are the beginning of a JSON document of a schema: a pushdown matcher fed byte by
// byte. A schema can be ambiguous at a point ("anyOf", a number that may go on, an enum value
// that is the prefix of another), so the state is a set of stacks, one per reading still
// possible; a byte that no reading accepts leaves the set empty (dead).
//
// min_remaining() is the fewest bytes that finish a document from here (closing strings and
// brackets, required properties with their shortest values): the constrained sampler allows a
// token only while what the request has left can still finish the document.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "grammar/json_schema.h"

namespace herd::grammar {

class JsonMatcher {
 public:
  // `schema` must outlive the matcher (and its copies).
  explicit JsonMatcher(const Schema& schema);

  // False when no document of the schema continues so (the matcher is then dead).
  bool feed(unsigned char c);
  bool feed(std::string_view bytes);

  bool dead() const { return stacks_.empty(); }
  // The text so far is a whole document (it may still go on, e.g. a number).
  bool accepting() const { return min_remaining() == 0; }
  // A whole document after which nothing may follow.
  bool complete() const;
  // Fewest bytes that make the text so far a whole document; a large number when dead.
  int min_remaining() const;

  // Free values (no schema) nest at most this deep.
  static constexpr int kMaxFreeDepth = 6;

 private:
  enum class Type : std::uint8_t { kValue, kString, kNumber, kLiterals, kObject, kArray };
  enum Phase : std::uint8_t {
    kAfterOpen,   // object/array: right after the bracket
    kInKey,       // object: in a property name
    kAfterKey,    // object: expects ':'
    kInValue,     // object/array: a value is being written (the frame above it)
    kAfterValue,  // object: ',' or '}'; array: ',' or ']'
    kAfterComma,  // object: a property name; array: a value
  };
  // Number phases (JSON's grammar): which characters may come next.
  enum NumberPhase : std::uint8_t { kSign, kZero, kInt, kDot, kFrac, kExp, kExpSign, kExpDigits };

  struct Frame {
    Type type = Type::kValue;
    std::uint8_t phase = 0;
    std::uint8_t escape = 0;  // string: 1 after '\', 2..5 in \uXXXX (hex digits seen + 2)
    std::uint8_t utf8 = 0;    // string: continuation bytes still expected
    std::uint8_t lead = 0;    // string: the lead byte, until its first continuation byte
    bool key = false;         // string: the property name of a free object
    bool integer = false;     // number: no fraction or exponent
    std::int16_t depth = 0;   // how deep the value is nested
    int node = -1;            // schema node; -1: any value (free)
    int count = 0;            // string: characters; array: items done; object: the last
                              // property written (-1: none); number: digits in the part;
                              // literals: bytes matched
    int key_pos = 0;          // object: bytes of the property name matched
    std::uint64_t set = 0;    // literals: values still matching; object: names still matching
    bool operator==(const Frame&) const = default;
  };
  using Stack = std::vector<Frame>;

  const SchemaNode* node_of(const Frame& f) const;
  // The byte `c` on `stack`, every resulting reading appended to `out`.
  void step(Stack stack, unsigned char c, std::vector<Stack>& out) const;
  // A value of `node` starts with `c` on top of `stack`.
  void begin(Stack stack, int node, int depth, unsigned char c, std::vector<Stack>& out) const;
  // The top frame's value is complete: pop it and move its parent on.
  static void finish_value(Stack& stack);
  void step_string(Stack& stack, unsigned char c, std::vector<Stack>& out) const;
  void step_number(Stack& stack, unsigned char c, std::vector<Stack>& out) const;
  void step_literals(Stack& stack, unsigned char c, std::vector<Stack>& out) const;
  void step_object(Stack& stack, unsigned char c, std::vector<Stack>& out) const;
  void step_array(Stack& stack, unsigned char c, std::vector<Stack>& out) const;
  // Properties that may come after property `last` (up to and including the first required one).
  std::uint64_t next_properties(const SchemaNode& n, int last) const;
  // Bytes for the required properties after `last`, each with its comma.
  int rest_required(const SchemaNode& n, int last) const;
  int remaining(const Frame& f) const;
  int remaining(const Stack& s) const;
  const std::vector<std::string>& literals_of(const Frame& f) const;

  const Schema* schema_;
  std::vector<Stack> stacks_;
};

}  // namespace herd::grammar
