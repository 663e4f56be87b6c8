#include "model/chat_template_builtins.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <ctime>

#include "util/error.h"

namespace herd::model::jinja {
namespace {

// Python strings index by code point; split UTF-8 into one string per code point.
std::vector<std::string> code_points(const std::string& s) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80           ? 1
                    : (c >> 5) == 0x6  ? 2
                    : (c >> 4) == 0xE  ? 3
                    : (c >> 3) == 0x1E ? 4
                                       : 1;
    n = std::min(n, s.size() - i);
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

const std::string kWhitespace = " \t\n\r\f\v";

std::string strip(const std::string& s, const Value& chars, bool left, bool right) {
  const std::string& set = chars.is_string() ? chars.as_string() : kWhitespace;
  std::size_t b = 0, e = s.size();
  if (left) {
    while (b < e && set.find(s[b]) != std::string::npos) ++b;
  }
  if (right) {
    while (e > b && set.find(s[e - 1]) != std::string::npos) --e;
  }
  return s.substr(b, e - b);
}

std::string to_lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string to_upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string capitalize(const std::string& s) {
  std::string r = to_lower(s);
  if (!r.empty()) r[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(r[0])));
  return r;
}

std::string title(const std::string& s) {
  std::string r;
  bool start = true;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    r += static_cast<char>(start ? std::toupper(u) : std::tolower(u));
    start = !std::isalpha(u);
  }
  return r;
}

Array split(const std::string& s, const Value& sep, std::int64_t max_split) {
  Array out;
  if (!sep.is_string()) {  // Python: runs of whitespace, no empty parts
    std::size_t i = 0;
    while (true) {
      while (i < s.size() && kWhitespace.find(s[i]) != std::string::npos) ++i;
      if (i >= s.size()) break;
      if (max_split >= 0 && static_cast<std::int64_t>(out.size()) == max_split) {
        out.push_back(Value(strip(s.substr(i), Value(), false, true)));
        break;
      }
      std::size_t j = i;
      while (j < s.size() && kWhitespace.find(s[j]) == std::string::npos) ++j;
      out.push_back(Value(s.substr(i, j - i)));
      i = j;
    }
    return out;
  }
  const std::string& d = sep.as_string();
  if (d.empty()) fail_format("chat template: split() separator must not be empty");
  std::size_t start = 0;
  while (max_split < 0 || static_cast<std::int64_t>(out.size()) < max_split) {
    std::size_t at = s.find(d, start);
    if (at == std::string::npos) break;
    out.push_back(Value(s.substr(start, at - start)));
    start = at + d.size();
  }
  out.push_back(Value(s.substr(start)));
  return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to,
                        std::int64_t count) {
  if (from.empty()) return s;
  std::string r;
  std::size_t start = 0;
  for (std::int64_t n = 0; count < 0 || n < count; ++n) {
    std::size_t at = s.find(from, start);
    if (at == std::string::npos) break;
    r += s.substr(start, at - start) + to;
    start = at + from.size();
  }
  return r + s.substr(start);
}

bool matches_affix(const std::string& s, const Value& affix, bool prefix) {
  auto one = [&](const Value& a) {
    if (!a.is_string()) return false;
    const std::string& x = a.as_string();
    if (x.size() > s.size()) return false;
    return prefix ? s.compare(0, x.size(), x) == 0
                  : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (affix.is_array()) {
    return std::any_of(affix.as_array().begin(), affix.as_array().end(), one);
  }
  return one(affix);
}

std::int64_t length_of(const Value& v, int line) {
  if (v.is_string()) return static_cast<std::int64_t>(code_points(v.as_string()).size());
  if (v.is_array()) return static_cast<std::int64_t>(v.as_array().size());
  if (v.is_object()) return static_cast<std::int64_t>(v.as_object().items.size());
  if (v.is_undefined()) return 0;
  fail_format("chat template: line {}: a {} has no length", line, v.type_name());
}

std::string html_escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    switch (c) {
      case '&':
        r += "&amp;";
        break;
      case '<':
        r += "&lt;";
        break;
      case '>':
        r += "&gt;";
        break;
      case '"':
        r += "&#34;";
        break;
      case '\'':
        r += "&#39;";
        break;
      default:
        r += c;
    }
  }
  return r;
}

// selectattr/rejectattr/select/reject: keep items whose test (default: truthiness) passes.
Array filter_items(const Value& input, const Args& args, bool by_attr, bool keep, int line) {
  Array out;
  std::size_t test_at = by_attr ? 1 : 0;
  Value test = args.get(test_at, "");
  Args test_args;
  for (std::size_t i = test_at + 1; i < args.positional.size(); ++i) {
    test_args.positional.push_back(args.positional[i]);
  }
  for (const Value& item : iterate(input, line)) {
    Value subject = by_attr ? get_attr(item, args.get(0, "").to_string()) : item;
    bool pass = test.is_string() ? apply_test(test.as_string(), subject, test_args, line)
                                 : subject.truthy();
    if (pass == keep) out.push_back(item);
  }
  return out;
}

}  // namespace

Value Args::get(std::size_t index, std::string_view name) const {
  if (index < positional.size()) return positional[index];
  if (const Value* v = named.find(name)) return *v;
  return Value();
}

Value get_attr(const Value& target, const std::string& name) {
  if (target.is_object()) {
    if (const Value* v = target.as_object().find(name)) return *v;
  }
  return Value();
}

Value get_item(const Value& target, const Value& key, int line) {
  if (target.is_object()) return key.is_string() ? get_attr(target, key.as_string()) : Value();
  if ((target.is_array() || target.is_string()) && key.is_int()) {
    Array items = target.is_array() ? target.as_array() : iterate(target, line);
    std::int64_t i = key.as_int();
    if (i < 0) i += static_cast<std::int64_t>(items.size());
    if (i < 0 || i >= static_cast<std::int64_t>(items.size())) return Value();
    return items[static_cast<std::size_t>(i)];
  }
  if (target.is_undefined()) return Value();
  fail_format("chat template: line {}: cannot index a {} with a {}", line, target.type_name(),
              key.type_name());
}

Value slice(const Value& target, const Value& start, const Value& stop, const Value& step,
            int line) {
  if (!target.is_array() && !target.is_string()) {
    fail_format("chat template: line {}: cannot slice a {}", line, target.type_name());
  }
  Array items = target.is_array() ? target.as_array() : iterate(target, line);
  const std::int64_t n = static_cast<std::int64_t>(items.size());
  std::int64_t st = step.is_int() ? step.as_int() : 1;
  if (st == 0) fail_format("chat template: line {}: slice step cannot be zero", line);
  // Python's slice.indices(): clamp, with defaults depending on the direction.
  auto bound = [&](const Value& v, std::int64_t dflt) {
    if (!v.is_int()) return dflt;
    std::int64_t i = v.as_int();
    if (i < 0) i += n;
    return st > 0 ? std::clamp<std::int64_t>(i, 0, n) : std::clamp<std::int64_t>(i, -1, n - 1);
  };
  std::int64_t b = bound(start, st > 0 ? 0 : n - 1);
  std::int64_t e = bound(stop, st > 0 ? n : -1);
  Array out;
  for (std::int64_t i = b; st > 0 ? i < e : i > e; i += st) out.push_back(items[i]);
  if (target.is_array()) return Value(std::move(out));
  std::string s;
  for (const Value& v : out) s += v.as_string();
  return Value(std::move(s));
}

Array iterate(const Value& v, int line) {
  if (v.is_array()) return v.as_array();
  if (v.is_object()) {
    Array keys;
    for (const auto& [k, _] : v.as_object().items) keys.push_back(Value(k));
    return keys;
  }
  if (v.is_string()) {
    Array chars;
    for (auto& c : code_points(v.as_string())) chars.push_back(Value(std::move(c)));
    return chars;
  }
  if (v.is_undefined() || v.is_none()) return {};
  fail_format("chat template: line {}: cannot iterate over a {}", line, v.type_name());
}

Value apply_filter(const std::string& name, const Value& in, const Args& args, int line) {
  auto need_string = [&]() -> const std::string& {
    if (!in.is_string()) {
      fail_format("chat template: line {}: filter '{}' needs a string, got {}", line, name,
                  in.type_name());
    }
    return in.as_string();
  };
  if (name == "trim") return Value(strip(need_string(), args.get(0, "chars"), true, true));
  if (name == "length" || name == "count") return Value(length_of(in, line));
  if (name == "tojson") {
    Value indent = args.get(0, "indent");
    return Value(in.to_json(indent.is_int() ? static_cast<int>(indent.as_int()) : -1));
  }
  if (name == "string") return Value(in.to_string());
  if (name == "safe") return in;
  if (name == "e" || name == "escape") return Value(html_escape(in.to_string()));
  if (name == "upper") return Value(to_upper(need_string()));
  if (name == "lower") return Value(to_lower(need_string()));
  if (name == "capitalize") return Value(capitalize(need_string()));
  if (name == "title") return Value(title(need_string()));
  if (name == "replace") {
    Value count = args.get(2, "count");
    return Value(replace_all(need_string(), args.get(0, "old").to_string(),
                             args.get(1, "new").to_string(), count.is_int() ? count.as_int() : -1));
  }
  if (name == "default" || name == "d") {
    bool use = in.is_undefined() || (args.get(1, "boolean").truthy() && !in.truthy());
    return use ? (args.get(0, "default_value").is_undefined() ? Value("")
                                                              : args.get(0, "default_value"))
               : in;
  }
  if (name == "first" || name == "last") {
    Array items = iterate(in, line);
    if (items.empty()) return Value();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    std::string sep = args.get(0, "d").is_undefined() ? "" : args.get(0, "d").to_string();
    Value attr = args.get(1, "attribute");
    std::string r;
    bool first = true;
    for (const Value& item : iterate(in, line)) {
      r += (first ? "" : sep) +
           (attr.is_string() ? get_attr(item, attr.as_string()) : item).to_string();
      first = false;
    }
    return Value(std::move(r));
  }
  if (name == "list") return Value(iterate(in, line));
  if (name == "reverse") {
    Array items = iterate(in, line);
    std::reverse(items.begin(), items.end());
    if (!in.is_string()) return Value(std::move(items));
    std::string s;
    for (const Value& v : items) s += v.as_string();
    return Value(std::move(s));
  }
  if (name == "items") {
    Array out;
    if (in.is_object()) {
      for (const auto& [k, v] : in.as_object().items) out.push_back(Value(Array{Value(k), v}));
    }
    return Value(std::move(out));
  }
  if (name == "int") {
    if (in.is_number() || in.is_bool()) return Value(static_cast<std::int64_t>(in.as_number()));
    try {
      return Value(static_cast<std::int64_t>(std::stoll(in.to_string())));
    } catch (const std::exception&) {
      return args.get(0, "default").is_undefined() ? Value(0) : args.get(0, "default");
    }
  }
  if (name == "float") {
    if (in.is_number() || in.is_bool()) return Value(in.as_number());
    try {
      return Value(std::stod(in.to_string()));
    } catch (const std::exception&) {
      return Value(0.0);
    }
  }
  if (name == "abs" && (in.is_number())) {
    return in.is_int() ? Value(static_cast<std::int64_t>(std::llabs(in.as_int())))
                       : Value(std::fabs(in.as_number()));
  }
  if (name == "round" && in.is_number()) {
    double scale =
        std::pow(10.0, args.get(0, "precision").is_int() ? args.get(0, "precision").as_int() : 0);
    return Value(std::round(in.as_number() * scale) / scale);
  }
  if (name == "map") {
    Array out;
    Value attr = args.named.find("attribute") ? *args.named.find("attribute") : Value();
    for (const Value& item : iterate(in, line)) {
      if (attr.is_string()) {
        out.push_back(get_attr(item, attr.as_string()));
      } else {
        Args rest;
        for (std::size_t i = 1; i < args.positional.size(); ++i)
          rest.positional.push_back(args.positional[i]);
        out.push_back(apply_filter(args.get(0, "").to_string(), item, rest, line));
      }
    }
    return Value(std::move(out));
  }
  if (name == "selectattr") return Value(filter_items(in, args, true, true, line));
  if (name == "rejectattr") return Value(filter_items(in, args, true, false, line));
  if (name == "select") return Value(filter_items(in, args, false, true, line));
  if (name == "reject") return Value(filter_items(in, args, false, false, line));
  if (name == "unique") {
    Array out;
    for (const Value& item : iterate(in, line)) {
      if (!contains(Value(out), item, line)) out.push_back(item);
    }
    return Value(std::move(out));
  }
  fail_format("chat template: line {}: unsupported filter '{}'", line, name);
}

bool apply_test(const std::string& name, const Value& v, const Args& args, int line) {
  Value arg = args.get(0, "");
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "mapping") return v.is_object();
  if (name == "sequence") return v.is_array() || v.is_string() || v.is_object();
  if (name == "iterable") return v.is_array() || v.is_string() || v.is_object();
  if (name == "callable") return false;
  if (name == "odd" || name == "even") {
    if (!v.is_int()) fail_format("chat template: line {}: test '{}' needs an integer", line, name);
    return (v.as_int() % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    if (!v.is_int() || !arg.is_int() || arg.as_int() == 0) {
      fail_format("chat template: line {}: 'divisibleby' needs integers", line);
    }
    return v.as_int() % arg.as_int() == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==" || name == "sameas") return equals(v, arg);
  if (name == "ne" || name == "!=") return !equals(v, arg);
  if (name == "lt") return compare(v, arg, "<", line);
  if (name == "le") return compare(v, arg, "<=", line);
  if (name == "gt") return compare(v, arg, ">", line);
  if (name == "ge") return compare(v, arg, ">=", line);
  if (name == "in") return contains(arg, v, line);
  fail_format("chat template: line {}: unsupported test '{}'", line, name);
}

Value call_method(const Value& self, const std::string& name, const Args& args, int line) {
  if (self.is_string()) {
    const std::string& s = self.as_string();
    Value a0 = args.get(0, "");
    if (name == "strip") return Value(strip(s, a0, true, true));
    if (name == "lstrip") return Value(strip(s, a0, true, false));
    if (name == "rstrip") return Value(strip(s, a0, false, true));
    if (name == "split") {
      Value max_split = args.get(1, "maxsplit");
      return Value(split(s, args.get(0, "sep"), max_split.is_int() ? max_split.as_int() : -1));
    }
    if (name == "startswith") return Value(matches_affix(s, a0, true));
    if (name == "endswith") return Value(matches_affix(s, a0, false));
    if (name == "upper") return Value(to_upper(s));
    if (name == "lower") return Value(to_lower(s));
    if (name == "title") return Value(title(s));
    if (name == "capitalize") return Value(capitalize(s));
    if (name == "replace") {
      Value count = args.get(2, "count");
      return Value(replace_all(s, a0.to_string(), args.get(1, "").to_string(),
                               count.is_int() ? count.as_int() : -1));
    }
    if (name == "find") {
      std::size_t at = s.find(a0.to_string());
      return Value(at == std::string::npos ? std::int64_t{-1} : static_cast<std::int64_t>(at));
    }
    if (name == "join") {
      std::string r;
      bool first = true;
      for (const Value& item : iterate(a0, line)) {
        r += (first ? "" : s) + item.to_string();
        first = false;
      }
      return Value(std::move(r));
    }
  }
  if (self.is_object()) {
    const Object& o = self.as_object();
    if (name == "items" || name == "keys" || name == "values") {
      Array out;
      for (const auto& [k, v] : o.items) {
        out.push_back(name == "items" ? Value(Array{Value(k), v}) : name == "keys" ? Value(k) : v);
      }
      return Value(std::move(out));
    }
    if (name == "get") {
      Value found = get_attr(self, args.get(0, "key").to_string());
      return found.is_undefined()
                 ? (args.positional.size() > 1 ? args.positional[1] : Value::none())
                 : found;
    }
  }
  if (self.is_array() && name == "append") {
    self.as_array().push_back(args.get(0, ""));
    return Value::none();
  }
  fail_format("chat template: line {}: a {} has no method '{}'", line, self.type_name(), name);
}

Value call_global(const std::string& name, const Args& args, int line) {
  if (name == "namespace" || name == "dict") {
    Object o;
    if (!args.positional.empty() && args.positional[0].is_object())
      o = args.positional[0].as_object();
    for (const auto& [k, v] : args.named.items) o.set(k, v);
    return Value(std::move(o));
  }
  if (name == "raise_exception") {
    throw InvalidArgument("chat template rejected the conversation: " +
                          args.get(0, "message").to_string());
  }
  if (name == "range") {
    std::int64_t start = 0, stop = 0, step = 1;
    auto as_int = [&](std::size_t i) {
      if (!args.positional[i].is_int())
        fail_format("chat template: line {}: range() needs integers", line);
      return args.positional[i].as_int();
    };
    if (args.positional.size() == 1) stop = as_int(0);
    if (args.positional.size() >= 2) start = as_int(0), stop = as_int(1);
    if (args.positional.size() >= 3) step = as_int(2);
    if (step == 0) fail_format("chat template: line {}: range() step cannot be zero", line);
    if ((stop - start) / step > 1000000)
      fail_format("chat template: line {}: range() too long", line);
    Array out;
    for (std::int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(Value(i));
    return Value(std::move(out));
  }
  if (name == "strftime_now") {  // transformers' helper for templates that print today's date
    std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    localtime_r(&now, &tm);
    char buf[256];
    std::size_t n = std::strftime(buf, sizeof buf, args.get(0, "format").to_string().c_str(), &tm);
    return Value(std::string(buf, n));
  }
  fail_format("chat template: line {}: unknown function '{}'", line, name);
}

}  // namespace herd::model::jinja
