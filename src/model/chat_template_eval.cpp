// Rendering of parsed Jinja templates: scopes, statements and operators. Filters, tests,
// methods and global functions live in chat_template_builtins.cpp.
#include <cmath>

#include "model/chat_template_builtins.h"
#include "model/chat_template_jinja.h"
#include "util/error.h"

namespace herd::model::jinja {
namespace {

// Templates can loop; a runaway one must not eat the machine.
constexpr std::size_t kMaxOutputBytes = 64u << 20;

enum class Flow { kNormal, kBreak, kContinue };

class Renderer {
 public:
  explicit Renderer(const Object& globals) { scopes_.emplace_back(globals); }

  Flow exec_all(const NodeList& nodes) {
    for (const auto& n : nodes) {
      Flow f = exec(*n);
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  std::string take_output() { return std::move(out_); }

 private:
  Flow exec(const Node& n) {
    switch (n.kind) {
      case Node::Kind::kText:
        emit(n.text);
        return Flow::kNormal;
      case Node::Kind::kOutput:
        emit(eval(*n.expr).to_string());
        return Flow::kNormal;
      case Node::Kind::kIf:
        for (const auto& [cond, body] : n.branches) {
          if (eval(*cond).truthy()) return exec_all(body);
        }
        return exec_all(n.else_body);
      case Node::Kind::kFor:
        return exec_for(n);
      case Node::Kind::kSet:
        exec_set(n);
        return Flow::kNormal;
      case Node::Kind::kBreak:
        return Flow::kBreak;
      case Node::Kind::kContinue:
        return Flow::kContinue;
      case Node::Kind::kBlock:
        return exec_all(n.body);
    }
    return Flow::kNormal;
  }

  void emit(const std::string& s) {
    out_ += s;
    if (out_.size() > kMaxOutputBytes) {
      fail_format("chat template: output exceeds {} MiB (a runaway loop?)", kMaxOutputBytes >> 20);
    }
  }

  void exec_set(const Node& n) {
    Value v = eval(*n.expr);
    if (n.targets.size() == 1) {
      scopes_.back().set(n.targets[0], std::move(v));
      return;
    }
    Value target = lookup(n.targets[0]);
    if (!target.is_object()) {
      fail_format("chat template: line {}: cannot set attribute '{}' of {} '{}' (use namespace())",
                  n.line, n.targets[1], target.type_name(), n.targets[0]);
    }
    target.as_object().set(n.targets[1], std::move(v));
  }

  Flow exec_for(const Node& n) {
    Array all = iterate(eval(*n.expr), n.line);
    Array items;
    if (n.filter) {
      for (const Value& item : all) {
        scopes_.emplace_back();
        bind_targets(n, item);
        bool keep = eval(*n.filter).truthy();
        scopes_.pop_back();
        if (keep) items.push_back(item);
      }
    } else {
      items = std::move(all);
    }
    if (items.empty()) return exec_all(n.else_body);
    const std::int64_t count = static_cast<std::int64_t>(items.size());
    for (std::int64_t i = 0; i < count; ++i) {
      scopes_.emplace_back();
      bind_targets(n, items[i]);
      Object loop;
      loop.set("index", Value(i + 1));
      loop.set("index0", Value(i));
      loop.set("revindex", Value(count - i));
      loop.set("revindex0", Value(count - i - 1));
      loop.set("first", Value(i == 0));
      loop.set("last", Value(i == count - 1));
      loop.set("length", Value(count));
      loop.set("previtem", i > 0 ? items[i - 1] : Value());
      loop.set("nextitem", i + 1 < count ? items[i + 1] : Value());
      scopes_.back().set("loop", Value(std::move(loop)));
      Flow f = exec_all(n.body);
      scopes_.pop_back();
      if (f == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  void bind_targets(const Node& n, const Value& item) {
    if (n.targets.size() == 1) {
      scopes_.back().set(n.targets[0], item);
      return;
    }
    Array parts = iterate(item, n.line);
    if (parts.size() != n.targets.size()) {
      fail_format("chat template: line {}: cannot unpack {} values into {} loop variables", n.line,
                  parts.size(), n.targets.size());
    }
    for (std::size_t i = 0; i < parts.size(); ++i) scopes_.back().set(n.targets[i], parts[i]);
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      if (const Value* v = it->find(name)) return *v;
    }
    return Value();
  }

  Value eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.value;
      case Expr::Kind::kName:
        return lookup(e.name);
      case Expr::Kind::kAttr:
        return get_attr(eval(*e.args[0]), e.name);
      case Expr::Kind::kIndex:
        return get_item(eval(*e.args[0]), eval(*e.args[1]), e.line);
      case Expr::Kind::kSlice: {
        Value parts[3];
        for (int i = 0; i < 3; ++i) {
          if (e.args[i + 1]) parts[i] = eval(*e.args[i + 1]);
        }
        return slice(eval(*e.args[0]), parts[0], parts[1], parts[2], e.line);
      }
      case Expr::Kind::kCall:
        return eval_call(e);
      case Expr::Kind::kFilter: {
        Args a = eval_args(e);
        return apply_filter(e.name, eval(*e.args[0]), a, e.line);
      }
      case Expr::Kind::kTest: {
        Args a = eval_args(e);
        bool r = apply_test(e.name, eval(*e.args[0]), a, e.line);
        return Value(e.negated ? !r : r);
      }
      case Expr::Kind::kUnary: {
        Value v = eval(*e.args[0]);
        if (e.name == "not") return Value(!v.truthy());
        if (!v.is_number() && !v.is_bool()) {
          fail_format("chat template: line {}: unary '{}' needs a number, got {}", e.line, e.name,
                      v.type_name());
        }
        if (e.name == "+") return v;
        return v.is_int() ? Value(-v.as_int()) : Value(-v.as_number());
      }
      case Expr::Kind::kBinary:
        return eval_binary(e);
      case Expr::Kind::kTernary:
        if (eval(*e.args[1]).truthy()) return eval(*e.args[0]);
        return e.args.size() > 2 ? eval(*e.args[2]) : Value();
      case Expr::Kind::kList: {
        Array a;
        for (const auto& item : e.args) a.push_back(eval(*item));
        return Value(std::move(a));
      }
      case Expr::Kind::kDict: {
        Object o;
        for (std::size_t i = 0; i + 1 < e.args.size(); i += 2) {
          o.set(eval(*e.args[i]).to_string(), eval(*e.args[i + 1]));
        }
        return Value(std::move(o));
      }
    }
    return Value();
  }

  Args eval_args(const Expr& e) {
    Args a;
    for (std::size_t i = 1; i < e.args.size(); ++i) a.positional.push_back(eval(*e.args[i]));
    for (const auto& [k, v] : e.kwargs) a.named.set(k, eval(*v));
    return a;
  }

  Value eval_call(const Expr& e) {
    const Expr& callee = *e.args[0];
    Args a = eval_args(e);
    if (callee.kind == Expr::Kind::kAttr) {
      return call_method(eval(*callee.args[0]), callee.name, a, e.line);
    }
    if (callee.kind == Expr::Kind::kName) {
      Value bound = lookup(callee.name);
      if (!bound.is_undefined()) {
        fail_format("chat template: line {}: '{}' is a {}, not a function", e.line, callee.name,
                    bound.type_name());
      }
      return call_global(callee.name, a, e.line);
    }
    fail_format("chat template: line {}: this expression cannot be called", e.line);
  }

  Value eval_binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
      Value a = eval(*e.args[0]);
      return a.truthy() ? eval(*e.args[1]) : a;
    }
    if (op == "or") {
      Value a = eval(*e.args[0]);
      return a.truthy() ? a : eval(*e.args[1]);
    }
    Value a = eval(*e.args[0]);
    Value b = eval(*e.args[1]);
    if (op == "~") return Value(a.to_string() + b.to_string());
    if (op == "==") return Value(equals(a, b));
    if (op == "!=") return Value(!equals(a, b));
    if (op == "in") return Value(contains(b, a, e.line));
    if (op == "not in") return Value(!contains(b, a, e.line));
    if (op == "<" || op == ">" || op == "<=" || op == ">=") return Value(compare(a, b, op, e.line));
    return arithmetic(a, b, op, e.line);
  }

  std::vector<Object> scopes_;
  std::string out_;
};

}  // namespace

bool contains(const Value& container, const Value& item, int line) {
  if (container.is_string()) {
    if (!item.is_string()) {
      fail_format("chat template: line {}: 'in <string>' needs a string on the left, got {}", line,
                  item.type_name());
    }
    return container.as_string().find(item.as_string()) != std::string::npos;
  }
  if (container.is_array()) {
    for (const Value& v : container.as_array()) {
      if (equals(v, item)) return true;
    }
    return false;
  }
  if (container.is_object())
    return item.is_string() && container.as_object().find(item.as_string());
  if (container.is_undefined() || container.is_none()) return false;
  fail_format("chat template: line {}: cannot test membership in a {}", line,
              container.type_name());
}

bool compare(const Value& a, const Value& b, const std::string& op, int line) {
  int c;
  if ((a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool())) {
    double x = a.as_number(), y = b.as_number();
    c = x < y ? -1 : x > y ? 1 : 0;
  } else if (a.is_string() && b.is_string()) {
    c = a.as_string().compare(b.as_string());
  } else {
    fail_format("chat template: line {}: cannot compare {} {} {}", line, a.type_name(), op,
                b.type_name());
  }
  if (op == "<") return c < 0;
  if (op == ">") return c > 0;
  if (op == "<=") return c <= 0;
  return c >= 0;
}

Value arithmetic(const Value& a, const Value& b, const std::string& op, int line) {
  if (op == "+" && a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
  if (op == "+" && a.is_array() && b.is_array()) {
    Array r = a.as_array();
    r.insert(r.end(), b.as_array().begin(), b.as_array().end());
    return Value(std::move(r));
  }
  if (op == "*" && a.is_string() && b.is_int()) {
    std::string r;
    for (std::int64_t i = 0; i < b.as_int(); ++i) r += a.as_string();
    return Value(std::move(r));
  }
  bool numeric = (a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool());
  if (!numeric) {
    fail_format("chat template: line {}: unsupported operands for '{}': {} and {}", line, op,
                a.type_name(), b.type_name());
  }
  bool ints = !a.is_float() && !b.is_float();
  double x = a.as_number(), y = b.as_number();
  if ((op == "/" || op == "//" || op == "%") && y == 0) {
    fail_format("chat template: line {}: division by zero", line);
  }
  if (op == "/") return Value(x / y);
  if (ints) {
    std::int64_t i = static_cast<std::int64_t>(x), j = static_cast<std::int64_t>(y);
    if (op == "+") return Value(i + j);
    if (op == "-") return Value(i - j);
    if (op == "*") return Value(i * j);
    // Python floors integer division and takes the sign of the divisor for %.
    if (op == "//") return Value(static_cast<std::int64_t>(std::floor(x / y)));
    if (op == "%") return Value(((i % j) + j) % j);
    if (op == "**" && j >= 0) return Value(static_cast<std::int64_t>(std::llround(std::pow(x, y))));
  }
  if (op == "+") return Value(x + y);
  if (op == "-") return Value(x - y);
  if (op == "*") return Value(x * y);
  if (op == "//") return Value(std::floor(x / y));
  if (op == "%") return Value(x - y * std::floor(x / y));
  if (op == "**") return Value(std::pow(x, y));
  fail_format("chat template: line {}: unknown operator '{}'", line, op);
}

std::string Template::render(const Object& context) const {
  Renderer r(context);
  r.exec_all(nodes_);
  return r.take_output();
}

}  // namespace herd::model::jinja
