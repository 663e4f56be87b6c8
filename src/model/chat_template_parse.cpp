// Parsing of the Jinja subset (see chat_template_jinja.h): source -> tag segments -> tokens ->
// expression trees and statement nodes. Operator precedence follows Jinja2's parser: filters and
// `is` tests bind tighter than arithmetic (`messages|length - 1` is `(messages|length) - 1`).
#include <algorithm>
#include <cctype>
#include <initializer_list>

#include "model/chat_template_jinja.h"
#include "util/error.h"

namespace herd::model::jinja {
namespace {

struct Segment {
  enum class Type { kText, kExpr, kStmt };
  Type type;
  std::string body;
  int line;
};

int count_lines(std::string_view s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// Finds `close` after `from`, skipping over quoted strings inside the tag.
std::size_t find_tag_end(std::string_view src, std::size_t from, std::string_view close) {
  char quote = 0;
  for (std::size_t i = from; i < src.size(); ++i) {
    char c = src[i];
    if (quote) {
      if (c == '\\')
        ++i;
      else if (c == quote)
        quote = 0;
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (src.compare(i, close.size(), close) == 0) {
      return i;
    }
  }
  return std::string_view::npos;
}

std::vector<Segment> split_segments(std::string_view src) {
  std::vector<Segment> out;
  std::size_t pos = 0;
  bool strip_next_leading = false;  // the previous tag ended with '-'
  bool trim_next_newline = false;   // trim_blocks: the previous block tag ended
  int line = 1;
  auto push_text = [&](std::string text) {
    if (strip_next_leading) {
      std::size_t n = 0;
      while (n < text.size() && is_space(text[n])) ++n;
      text.erase(0, n);
    } else if (trim_next_newline) {
      if (text.rfind("\r\n", 0) == 0)
        text.erase(0, 2);
      else if (!text.empty() && text[0] == '\n')
        text.erase(0, 1);
    }
    strip_next_leading = trim_next_newline = false;
    out.push_back({Segment::Type::kText, std::move(text), line});
  };
  while (pos <= src.size()) {
    std::size_t open = src.find('{', pos);
    while (open != std::string_view::npos && open + 1 < src.size() && src[open + 1] != '{' &&
           src[open + 1] != '%' && src[open + 1] != '#') {
      open = src.find('{', open + 1);
    }
    if (open == std::string_view::npos || open + 1 >= src.size()) {
      push_text(std::string(src.substr(pos)));
      break;
    }
    std::string text(src.substr(pos, open - pos));
    char kind = src[open + 1];
    std::size_t inner = open + 2;
    char modifier = inner < src.size() ? src[inner] : 0;
    if (modifier == '-') {
      while (!text.empty() && is_space(text.back())) text.pop_back();
      ++inner;
    } else if (modifier == '+') {
      ++inner;
    } else if (kind != '{') {
      // lstrip_blocks: spaces and tabs between a line start and a block tag are dropped.
      std::size_t k = text.size();
      while (k > 0 && (text[k - 1] == ' ' || text[k - 1] == '\t')) --k;
      // Line start: a newline inside this text, or the template's very beginning.
      bool at_line_start = k > 0 ? text[k - 1] == '\n' : pos == 0;
      if (at_line_start) text.resize(k);
    }
    push_text(std::move(text));
    line += count_lines(src.substr(pos, open - pos));
    std::string_view close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    std::size_t end = kind == '#' ? src.find(close, inner) : find_tag_end(src, inner, close);
    if (end == std::string_view::npos) {
      fail_format("chat template: line {}: '{{{}' is never closed with '{}'", line, kind, close);
    }
    std::size_t body_end = end;
    bool dash = end > inner && src[end - 1] == '-';
    if (dash) --body_end;
    std::string body(src.substr(inner, body_end - inner));
    if (kind == '{') out.push_back({Segment::Type::kExpr, body, line});
    if (kind == '%') out.push_back({Segment::Type::kStmt, body, line});
    line += count_lines(src.substr(open, end - open));
    strip_next_leading = dash;
    trim_next_newline = !dash && kind != '{';
    pos = end + 2;
    if (pos == src.size()) break;
  }
  return out;
}

struct Token {
  enum class Type { kName, kString, kNumber, kOp, kEnd };
  Type type;
  std::string text;
  Value value;
};

std::vector<Token> tokenize(std::string_view s, int line) {
  std::vector<Token> out;
  std::size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (is_space(c)) {
      ++i;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      std::size_t j = i;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      out.push_back({Token::Type::kName, std::string(s.substr(i, j - i)), {}});
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      std::size_t j = i;
      bool is_float = false;
      while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '.')) {
        if (s[j] == '.') {
          if (j + 1 >= s.size() || !std::isdigit(static_cast<unsigned char>(s[j + 1]))) break;
          is_float = true;
        }
        ++j;
      }
      if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {  // exponent: 1e3, 2.5E-2
        std::size_t k = j + 1;
        if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
        if (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) {
          while (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) ++k;
          j = k;
          is_float = true;
        }
      }
      std::string num(s.substr(i, j - i));
      Value v =
          is_float ? Value(std::stod(num)) : Value(static_cast<std::int64_t>(std::stoll(num)));
      out.push_back({Token::Type::kNumber, std::move(num), std::move(v)});
      i = j;
    } else if (c == '\'' || c == '"') {
      std::string str;
      std::size_t j = i + 1;
      for (; j < s.size() && s[j] != c; ++j) {
        if (s[j] != '\\' || j + 1 >= s.size()) {
          str += s[j];
          continue;
        }
        char e = s[++j];
        switch (e) {
          case 'n':
            str += '\n';
            break;
          case 't':
            str += '\t';
            break;
          case 'r':
            str += '\r';
            break;
          case '\\':
            str += '\\';
            break;
          case '\'':
            str += '\'';
            break;
          case '"':
            str += '"';
            break;
          default:
            str += '\\';
            str += e;
        }
      }
      if (j >= s.size()) fail_format("chat template: line {}: unterminated string literal", line);
      Value v(str);
      out.push_back({Token::Type::kString, std::move(str), std::move(v)});
      i = j + 1;
    } else {
      static const char* kOps[] = {"==", "!=", "<=", ">=", "//", "**", "(", ")", "[",
                                   "]",  "{",  "}",  ".",  ",",  ":",  "|", "~", "+",
                                   "-",  "*",  "/",  "%",  "<",  ">",  "="};
      bool matched = false;
      for (const char* op : kOps) {
        std::string_view o(op);
        if (s.compare(i, o.size(), o) == 0) {
          out.push_back({Token::Type::kOp, std::string(o), {}});
          i += o.size();
          matched = true;
          break;
        }
      }
      if (!matched) fail_format("chat template: line {}: unexpected character '{}'", line, c);
    }
  }
  out.push_back({Token::Type::kEnd, "", {}});
  return out;
}

class ExprParser {
 public:
  ExprParser(std::vector<Token> tokens, int line) : tokens_(std::move(tokens)), line_(line) {}

  bool at_end() const { return peek().type == Token::Type::kEnd; }
  const Token& peek(std::size_t ahead = 0) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  bool is_op(std::string_view op, std::size_t ahead = 0) const {
    return peek(ahead).type == Token::Type::kOp && peek(ahead).text == op;
  }
  bool is_name(std::string_view name, std::size_t ahead = 0) const {
    return peek(ahead).type == Token::Type::kName && peek(ahead).text == name;
  }
  bool accept_op(std::string_view op) { return is_op(op) ? (++pos_, true) : false; }
  bool accept_name(std::string_view name) { return is_name(name) ? (++pos_, true) : false; }
  void expect_op(std::string_view op) {
    if (!accept_op(op)) error(fmt::format("expected '{}'", op));
  }
  std::string expect_identifier() {
    if (peek().type != Token::Type::kName) error("expected a name");
    return tokens_[pos_++].text;
  }
  void expect_end() {
    if (!at_end()) error("unexpected extra text");
  }
  [[noreturn]] void error(std::string_view what) const {
    std::string near = at_end() ? "end of tag" : "'" + peek().text + "'";
    fail_format("chat template: line {}: {} near {}", line_, what, near);
  }

  // Jinja's top level allows a bare tuple (`for a, b in ...` targets are parsed separately).
  ExprPtr parse_expression() {
    ExprPtr e = parse_or();
    if (accept_name("if")) {
      ExprPtr cond = parse_or();
      ExprPtr other = accept_name("else") ? parse_expression() : nullptr;
      e = make(Expr::Kind::kTernary, "", std::move(e), std::move(cond), std::move(other));
    }
    return e;
  }

  // For `for x in y if cond`: the iterable must not swallow the `if` as a ternary.
  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (accept_name("or")) e = make(Expr::Kind::kBinary, "or", std::move(e), parse_and());
    return e;
  }

 private:
  ExprPtr make(Expr::Kind kind, std::string name, ExprPtr a = nullptr, ExprPtr b = nullptr,
               ExprPtr c = nullptr) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->name = std::move(name);
    e->line = line_;
    e->args.push_back(std::move(a));
    if (b || c) e->args.push_back(std::move(b));
    if (c) e->args.push_back(std::move(c));
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (accept_name("and")) e = make(Expr::Kind::kBinary, "and", std::move(e), parse_not());
    return e;
  }
  ExprPtr parse_not() {
    if (accept_name("not")) return make(Expr::Kind::kUnary, "not", parse_not());
    return parse_compare();
  }
  ExprPtr parse_compare() {
    ExprPtr e = parse_additive();
    while (true) {
      static const std::string kCompareOps[] = {"==", "!=", "<=", ">=", "<", ">"};
      std::string op;
      for (const std::string& o : kCompareOps) {
        if (accept_op(o)) {
          op = o;
          break;
        }
      }
      if (op.empty() && accept_name("in")) op = "in";
      if (op.empty() && is_name("not") && is_name("in", 1)) {
        pos_ += 2;
        op = "not in";
      }
      if (op.empty()) return e;
      e = make(Expr::Kind::kBinary, op, std::move(e), parse_additive());
    }
  }
  ExprPtr parse_additive() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = tokens_[pos_++].text;
      e = make(Expr::Kind::kBinary, op, std::move(e), parse_concat());
    }
    return e;
  }
  ExprPtr parse_concat() {
    ExprPtr e = parse_multiplicative();
    while (accept_op("~")) e = make(Expr::Kind::kBinary, "~", std::move(e), parse_multiplicative());
    return e;
  }
  ExprPtr parse_multiplicative() {
    ExprPtr e = parse_power();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = tokens_[pos_++].text;
      e = make(Expr::Kind::kBinary, op, std::move(e), parse_power());
    }
    return e;
  }
  ExprPtr parse_power() {
    ExprPtr e = parse_unary();
    while (accept_op("**")) e = make(Expr::Kind::kBinary, "**", std::move(e), parse_unary());
    return e;
  }
  ExprPtr parse_unary() {
    if (is_op("-") || is_op("+")) {
      std::string op = tokens_[pos_++].text;
      return make(Expr::Kind::kUnary, op, parse_unary());
    }
    return parse_filters(parse_postfix(parse_primary()));
  }

  void parse_call_args(Expr& e) {
    // Called after '('; reads `a, b, key=value` up to ')'.
    while (!accept_op(")")) {
      if (peek().type == Token::Type::kName && is_op("=", 1)) {
        std::string key = tokens_[pos_].text;
        pos_ += 2;
        e.kwargs.emplace_back(key, parse_expression());
      } else {
        e.args.push_back(parse_expression());
      }
      if (!is_op(")")) expect_op(",");
    }
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (accept_op(".")) {
        auto a = make(Expr::Kind::kAttr, expect_identifier(), std::move(e));
        e = std::move(a);
      } else if (accept_op("[")) {
        e = parse_subscript(std::move(e));
      } else if (accept_op("(")) {
        auto call = make(Expr::Kind::kCall, "", std::move(e));
        parse_call_args(*call);
        e = std::move(call);
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr target) {
    ExprPtr parts[3];
    int part = 0;
    bool is_slice = false;
    while (!accept_op("]")) {
      if (accept_op(":")) {
        is_slice = true;
        if (++part > 2) error("too many ':' in slice");
        continue;
      }
      if (parts[part]) error("expected ']'");
      parts[part] = parse_expression();
    }
    if (!is_slice) {
      if (!parts[0]) error("empty subscript");
      return make(Expr::Kind::kIndex, "", std::move(target), std::move(parts[0]));
    }
    auto e = std::make_unique<Expr>();
    e->kind = Expr::Kind::kSlice;
    e->line = line_;
    e->args.push_back(std::move(target));
    for (auto& p : parts) e->args.push_back(std::move(p));
    return e;
  }

  ExprPtr parse_filters(ExprPtr e) {
    while (true) {
      if (accept_op("|")) {
        auto f = make(Expr::Kind::kFilter, expect_identifier(), std::move(e));
        if (accept_op("(")) parse_call_args(*f);
        e = std::move(f);
      } else if (accept_name("is")) {
        bool negated = accept_name("not");
        std::string test = peek().type == Token::Type::kName ? tokens_[pos_++].text : "";
        if (test.empty()) error("expected a test name after 'is'");
        auto t = make(Expr::Kind::kTest, test, std::move(e));
        t->negated = negated;
        if (accept_op("(")) {
          parse_call_args(*t);
        } else if (peek().type == Token::Type::kString || peek().type == Token::Type::kNumber ||
                   (peek().type == Token::Type::kName && !is_name("and") && !is_name("or") &&
                    !is_name("else") && !is_name("if") && !is_name("in") && !is_name("not"))) {
          t->args.push_back(parse_primary());  // `is sameas false`, `is divisibleby 3`
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_primary() {
    const Token& t = peek();
    if (t.type == Token::Type::kString) {
      // Adjacent string literals concatenate, as in Python.
      std::string s;
      while (peek().type == Token::Type::kString) s += tokens_[pos_++].text;
      auto e = make(Expr::Kind::kLiteral, "");
      e->value = Value(s);
      return e;
    }
    if (t.type == Token::Type::kNumber) {
      auto e = make(Expr::Kind::kLiteral, "");
      e->value = tokens_[pos_++].value;
      return e;
    }
    if (t.type == Token::Type::kName) {
      std::string name = tokens_[pos_++].text;
      auto e = make(Expr::Kind::kLiteral, "");
      if (name == "true" || name == "True")
        e->value = Value(true);
      else if (name == "false" || name == "False")
        e->value = Value(false);
      else if (name == "none" || name == "None")
        e->value = Value::none();
      else
        e = make(Expr::Kind::kName, name);
      return e;
    }
    if (accept_op("(")) {
      ExprPtr first = parse_expression();
      if (accept_op(")")) return first;
      auto list = make(Expr::Kind::kList, "tuple");  // a tuple behaves as a list here
      list->args.clear();
      list->args.push_back(std::move(first));
      while (accept_op(",")) {
        if (is_op(")")) break;
        list->args.push_back(parse_expression());
      }
      expect_op(")");
      return list;
    }
    if (accept_op("[")) {
      auto list = make(Expr::Kind::kList, "");
      list->args.clear();
      while (!accept_op("]")) {
        list->args.push_back(parse_expression());
        if (!is_op("]")) expect_op(",");
      }
      return list;
    }
    if (accept_op("{")) {
      auto dict = make(Expr::Kind::kDict, "");
      dict->args.clear();
      while (!accept_op("}")) {
        dict->args.push_back(parse_expression());
        expect_op(":");
        dict->args.push_back(parse_expression());
        if (!is_op("}")) expect_op(",");
      }
      return dict;
    }
    error("expected a value");
  }

  std::vector<Token> tokens_;
  std::size_t pos_ = 0;
  int line_;
};

class StatementParser {
 public:
  explicit StatementParser(std::vector<Segment> segments) : segments_(std::move(segments)) {}

  NodeList parse_all() {
    NodeList nodes = parse_until({}, nullptr);
    return nodes;
  }

 private:
  // Parses nodes until a statement whose keyword is in `ends`; returns that statement's parser.
  NodeList parse_until(std::initializer_list<std::string_view> ends,
                       std::unique_ptr<ExprParser>* terminator, std::string* which = nullptr) {
    NodeList nodes;
    while (pos_ < segments_.size()) {
      const Segment& seg = segments_[pos_++];
      auto node = std::make_unique<Node>();
      node->line = seg.line;
      if (seg.type == Segment::Type::kText) {
        if (seg.body.empty()) continue;
        node->kind = Node::Kind::kText;
        node->text = seg.body;
        nodes.push_back(std::move(node));
        continue;
      }
      auto p = std::make_unique<ExprParser>(tokenize(seg.body, seg.line), seg.line);
      if (seg.type == Segment::Type::kExpr) {
        node->kind = Node::Kind::kOutput;
        node->expr = p->parse_expression();
        p->expect_end();
        nodes.push_back(std::move(node));
        continue;
      }
      std::string keyword = p->expect_identifier();
      if (std::find(ends.begin(), ends.end(), keyword) != ends.end()) {
        if (which) *which = keyword;
        *terminator = std::move(p);
        return nodes;
      }
      parse_statement(keyword, *p, *node);
      nodes.push_back(std::move(node));
    }
    if (ends.size() > 0) {
      fail_format("chat template: a block is not closed: expected '{{% {} %}}' before the end",
                  *(ends.end() - 1));
    }
    return nodes;
  }

  void parse_statement(const std::string& keyword, ExprParser& p, Node& node) {
    if (keyword == "if") {
      node.kind = Node::Kind::kIf;
      ExprPtr cond = p.parse_expression();
      p.expect_end();
      while (true) {
        std::unique_ptr<ExprParser> term;
        std::string which;
        NodeList body = parse_until({"elif", "else", "endif"}, &term, &which);
        node.branches.emplace_back(std::move(cond), std::move(body));
        if (which == "elif") {
          cond = term->parse_expression();
          term->expect_end();
          continue;
        }
        term->expect_end();
        if (which == "else") {
          node.else_body = parse_until({"endif"}, &term);
          term->expect_end();
        }
        return;
      }
    }
    if (keyword == "for") {
      node.kind = Node::Kind::kFor;
      do {
        node.targets.push_back(p.expect_identifier());
      } while (p.accept_op(","));
      if (!p.accept_name("in")) p.error("expected 'in' in for loop");
      node.expr = p.parse_or();
      if (p.accept_name("if")) node.filter = p.parse_or();
      p.accept_name("recursive");
      p.expect_end();
      std::unique_ptr<ExprParser> term;
      std::string which;
      node.body = parse_until({"else", "endfor"}, &term, &which);
      term->expect_end();
      if (which == "else") {
        node.else_body = parse_until({"endfor"}, &term);
        term->expect_end();
      }
      return;
    }
    if (keyword == "set") {
      node.kind = Node::Kind::kSet;
      node.targets.push_back(p.expect_identifier());
      if (p.accept_op(".")) node.targets.push_back(p.expect_identifier());
      if (!p.accept_op("=")) {
        p.error("only `{% set name = value %}` is supported (no set blocks or tuple targets)");
      }
      node.expr = p.parse_expression();
      p.expect_end();
      return;
    }
    if (keyword == "break" || keyword == "continue") {
      node.kind = keyword == "break" ? Node::Kind::kBreak : Node::Kind::kContinue;
      p.expect_end();
      return;
    }
    if (keyword == "generation") {  // HF marker for assistant-token masks; renders its body
      node.kind = Node::Kind::kBlock;
      std::unique_ptr<ExprParser> term;
      node.body = parse_until({"endgeneration"}, &term);
      return;
    }
    fail_format("chat template: line {}: unsupported statement '{{% {} %}}'", node.line, keyword);
  }

  std::vector<Segment> segments_;
  std::size_t pos_ = 0;
};

}  // namespace

Template Template::parse(std::string_view source) {
  Template t;
  t.nodes_ = StatementParser(split_segments(source)).parse_all();
  return t;
}

}  // namespace herd::model::jinja
