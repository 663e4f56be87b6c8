// A small Jinja2 interpreter, enough for the chat templates stored in GGUF files
// (`tokenizer.chat_template`) and Hugging Face tokenizer_config.json. It renders with the
// settings transformers' apply_chat_template uses: trim_blocks and lstrip_blocks on, loop
// controls (break/continue) enabled.
//
// Supported: {{ }}, {% if/elif/else %}, {% for a[, b] in x [if c] %} with {% else %} and
// loop.index/index0/revindex/revindex0/first/last/length/previtem/nextitem, {% set %} (also
// `set ns.attr = ...`), {% generation %}, {# #}, whitespace control with '-', literals (strings,
// numbers, lists, dicts, true/false/none), arithmetic, ~ and + concatenation, comparisons,
// and/or/not, `in`, `a if c else b`, subscripts and slices, attribute access, `is` tests,
// filters (trim, length, tojson, ...), string/dict methods (strip, split, startswith, items ...),
// and the globals namespace(), range(), raise_exception() and strftime_now().
// Not supported: macros, call blocks, include/extends, filter blocks, `set` blocks.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/chat_template_value.h"

namespace herd::model::jinja {

struct Expr;
struct Node;
using ExprPtr = std::unique_ptr<Expr>;
using NodeList = std::vector<std::unique_ptr<Node>>;

struct Expr {
  enum class Kind {
    kLiteral,  // value
    kName,     // name
    kAttr,     // args[0].name
    kIndex,    // args[0][args[1]]
    kSlice,    // args[0][args[1]:args[2]:args[3]] (null parts omitted)
    kCall,     // args[0](args[1..]) with kwargs
    kFilter,   // args[0] | name(args[1..], kwargs)
    kTest,     // args[0] is [not] name(args[1..])
    kUnary,    // op args[0]: "not", "-", "+"
    kBinary,   // args[0] op args[1]
    kTernary,  // args[0] if args[1] else args[2] (args[2] may be null)
    kList,     // [args...]
    kDict,     // {args[0]: args[1], ...}
  };
  Kind kind;
  Value value;
  std::string name;  // identifier, attribute, filter/test name, or operator
  bool negated = false;
  int line = 0;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Node {
  enum class Kind { kText, kOutput, kIf, kFor, kSet, kBreak, kContinue, kBlock };
  Kind kind;
  int line = 0;
  std::string text;                  // kText
  ExprPtr expr;                      // kOutput, kSet value, kFor iterable
  std::vector<std::string> targets;  // kFor loop variables; kSet: {name} or {name, attr}
  ExprPtr filter;                    // kFor `if` clause
  std::vector<std::pair<ExprPtr, NodeList>> branches;  // kIf
  NodeList body;                                       // kFor / kBlock
  NodeList else_body;                                  // kIf / kFor
};

class Template {
 public:
  // Throws herd::FormatError naming the line and the problem.
  static Template parse(std::string_view source);

  // `context` holds the template's globals (messages, add_generation_prompt, bos_token ...).
  // Throws herd::InvalidArgument for raise_exception() (the template rejects the conversation)
  // and herd::FormatError for other errors while rendering.
  std::string render(const Object& context) const;

 private:
  NodeList nodes_;
};

}  // namespace herd::model::jinja
