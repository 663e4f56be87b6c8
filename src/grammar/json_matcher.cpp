#include "grammar/json_matcher.h"

#include <algorithm>
#include <climits>

namespace herd::grammar {

namespace {

constexpr int kDead = INT_MAX / 4;
// Digits allowed in a number's integer part, fraction and exponent: enough for any double or
// 64-bit integer a client means, and a bound on what a model can ramble.
constexpr int kMaxIntDigits = 15;
constexpr int kMaxFracDigits = 15;
constexpr int kMaxExpDigits = 2;  // 1e99 at most: every double parser takes it

const std::vector<std::string>& free_literals() {
  static const std::vector<std::string> values = {"true", "false", "null"};
  return values;
}

bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_hex(unsigned char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

std::uint64_t all_of(std::size_t n) {
  return n >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1;
}

}  // namespace

JsonMatcher::JsonMatcher(const Schema& schema) : schema_(&schema) {
  Frame root;
  root.type = Type::kValue;
  root.node = schema.root;
  stacks_.push_back({root});
}

const SchemaNode* JsonMatcher::node_of(const Frame& f) const {
  return f.node < 0 ? nullptr : &schema_->node(f.node);
}

const std::vector<std::string>& JsonMatcher::literals_of(const Frame& f) const {
  return f.node < 0 ? free_literals() : schema_->node(f.node).literals;
}

bool JsonMatcher::feed(unsigned char c) {
  std::vector<Stack> next;
  for (const Stack& s : stacks_) step(s, c, next);
  // Readings that have become the same are one.
  std::vector<Stack> unique;
  for (auto& s : next)
    if (std::find(unique.begin(), unique.end(), s) == unique.end()) unique.push_back(std::move(s));
  stacks_ = std::move(unique);
  return !stacks_.empty();
}

bool JsonMatcher::feed(std::string_view bytes) {
  for (char c : bytes)
    if (!feed(static_cast<unsigned char>(c))) return false;
  return true;
}

bool JsonMatcher::complete() const {
  if (stacks_.empty()) return false;
  for (const Stack& s : stacks_)
    if (!s.empty()) return false;
  return true;
}

void JsonMatcher::finish_value(Stack& stack) {
  const bool was_key = stack.back().key;
  stack.pop_back();
  if (stack.empty()) return;
  Frame& parent = stack.back();
  if (was_key) {
    parent.phase = kAfterKey;
  } else if (parent.type == Type::kArray) {
    parent.phase = kAfterValue;
    ++parent.count;
  } else {
    parent.phase = kAfterValue;
  }
}

void JsonMatcher::step(Stack stack, unsigned char c, std::vector<Stack>& out) const {
  if (stack.empty()) return;  // a whole document: nothing may follow
  const Frame f = stack.back();
  switch (f.type) {
    case Type::kValue:
      stack.pop_back();
      begin(std::move(stack), f.node, f.depth, c, out);
      return;
    case Type::kString:
      return step_string(stack, c, out);
    case Type::kNumber:
      return step_number(stack, c, out);
    case Type::kLiterals:
      return step_literals(stack, c, out);
    case Type::kObject:
      return step_object(stack, c, out);
    case Type::kArray:
      return step_array(stack, c, out);
  }
}

void JsonMatcher::begin(Stack stack, int node, int depth, unsigned char c,
                        std::vector<Stack>& out) const {
  const SchemaNode* n = node < 0 ? nullptr : &schema_->node(node);
  using Kind = SchemaNode::Kind;
  if (n && n->kind == Kind::kAnyOf) {
    for (int option : n->options) begin(stack, option, depth, c, out);
    return;
  }
  const bool free = !n || n->kind == Kind::kAny;
  Frame f;
  f.depth = static_cast<std::int16_t>(depth);
  f.node = free ? -1 : node;
  if (c == '{' && (free ? depth < kMaxFreeDepth : n->kind == Kind::kObject)) {
    f.type = Type::kObject;
    f.phase = kAfterOpen;
    f.count = -1;
    stack.push_back(f);
    out.push_back(std::move(stack));
  } else if (c == '[' && (free ? depth < kMaxFreeDepth : n->kind == Kind::kArray)) {
    f.type = Type::kArray;
    f.phase = kAfterOpen;
    stack.push_back(f);
    out.push_back(std::move(stack));
  } else if (c == '"' && (free || n->kind == Kind::kString)) {
    f.type = Type::kString;
    stack.push_back(f);
    out.push_back(std::move(stack));
  } else if ((c == '-' || is_digit(c)) &&
             (free || n->kind == Kind::kNumber || n->kind == Kind::kInteger)) {
    f.type = Type::kNumber;
    f.integer = n && n->kind == Kind::kInteger;
    f.phase = kSign;
    stack.push_back(f);
    step_number(stack, c, out);
  } else if (free || n->kind == Kind::kLiterals) {
    f.type = Type::kLiterals;
    f.set = all_of(literals_of(f).size());
    stack.push_back(f);
    step_literals(stack, c, out);
  }
}

void JsonMatcher::step_string(Stack& stack, unsigned char c, std::vector<Stack>& out) const {
  Frame& f = stack.back();
  const SchemaNode* n = node_of(f);
  const int min_length = n && n->kind == SchemaNode::Kind::kString ? n->min_length : 0;
  const int max_length = n && n->kind == SchemaNode::Kind::kString ? n->max_length : -1;
  const bool room = max_length < 0 || f.count < max_length;
  if (f.escape == 1) {
    if (c == 'u') {
      f.escape = 2;
    } else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
               c == 'r' || c == 't') {
      f.escape = 0;
      ++f.count;
    } else {
      return;
    }
  } else if (f.escape >= 2) {
    if (!is_hex(c)) return;
    if (++f.escape == 6) {
      f.escape = 0;
      ++f.count;
    }
  } else if (f.utf8 > 0) {
    // RFC 3629: after some lead bytes the first continuation byte has a narrower range (no
    // overlong forms, no surrogates, nothing above U+10FFFF).
    unsigned char lo = 0x80, hi = 0xBF;
    if (f.lead == 0xE0) lo = 0xA0;
    if (f.lead == 0xED) hi = 0x9F;
    if (f.lead == 0xF0) lo = 0x90;
    if (f.lead == 0xF4) hi = 0x8F;
    if (c < lo || c > hi) return;
    f.lead = 0;
    if (--f.utf8 == 0) ++f.count;
  } else if (c == '"') {
    if (f.count < min_length) return;
    finish_value(stack);
  } else if (c == '\\') {
    if (!room) return;
    f.escape = 1;
  } else if (c < 0x20) {
    return;  // control characters must be escaped
  } else if (c < 0x80) {
    if (!room) return;
    ++f.count;
  } else {
    if (!room) return;
    f.lead = c;
    if (c >= 0xC2 && c <= 0xDF)
      f.utf8 = 1;
    else if (c >= 0xE0 && c <= 0xEF)
      f.utf8 = 2;
    else if (c >= 0xF0 && c <= 0xF4)
      f.utf8 = 3;
    else
      return;  // not a UTF-8 lead byte
  }
  out.push_back(std::move(stack));
}

void JsonMatcher::step_number(Stack& stack, unsigned char c, std::vector<Stack>& out) const {
  const Frame f = stack.back();
  const bool ends_here = f.phase == kZero || f.phase == kInt || f.phase == kFrac ||
                         f.phase == kExpDigits;
  if (ends_here && f.count > 0) {
    // The number may end before `c`: `c` then belongs to what follows it.
    Stack after = stack;
    finish_value(after);
    step(std::move(after), c, out);
  }
  Frame& g = stack.back();
  auto next = [&](NumberPhase phase, int count) {
    g.phase = phase;
    g.count = count;
    out.push_back(std::move(stack));
  };
  switch (f.phase) {
    case kSign:
      if (f.count == 0 && c == '-') return next(kSign, -1);  // -1: the sign was seen
      if (c == '0') return next(kZero, 1);
      if (is_digit(c)) return next(kInt, 1);
      return;
    case kZero:
    case kInt:
      if (f.phase == kInt && is_digit(c) && f.count < kMaxIntDigits) return next(kInt, f.count + 1);
      if (f.integer) return;
      if (c == '.') return next(kDot, 0);
      if (c == 'e' || c == 'E') return next(kExp, 0);
      return;
    case kDot:
      if (is_digit(c)) return next(kFrac, 1);
      return;
    case kFrac:
      if (is_digit(c) && f.count < kMaxFracDigits) return next(kFrac, f.count + 1);
      if (c == 'e' || c == 'E') return next(kExp, 0);
      return;
    case kExp:
      if (c == '+' || c == '-') return next(kExpSign, 0);
      if (is_digit(c)) return next(kExpDigits, 1);
      return;
    case kExpSign:
      if (is_digit(c)) return next(kExpDigits, 1);
      return;
    case kExpDigits:
      if (is_digit(c) && f.count < kMaxExpDigits) return next(kExpDigits, f.count + 1);
      return;
  }
}

void JsonMatcher::step_literals(Stack& stack, unsigned char c, std::vector<Stack>& out) const {
  const Frame f = stack.back();
  const auto& values = literals_of(f);
  std::uint64_t still = 0;
  bool whole = false;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!(f.set >> i & 1)) continue;
    const std::string& v = values[i];
    const auto pos = static_cast<std::size_t>(f.count);
    if (pos == v.size()) whole = true;
    if (pos < v.size() && static_cast<unsigned char>(v[pos]) == c) still |= std::uint64_t{1} << i;
  }
  if (whole) {
    Stack after = stack;
    finish_value(after);
    step(std::move(after), c, out);
  }
  if (!still) return;
  Frame& g = stack.back();
  g.set = still;
  ++g.count;
  // Every value still matching is whole: none can go on, so the value ends here (and a
  // document that is one literal is complete at once).
  bool all_whole = true;
  for (std::size_t i = 0; i < values.size(); ++i)
    if ((still >> i & 1) && values[i].size() != static_cast<std::size_t>(g.count)) all_whole = false;
  if (all_whole) finish_value(stack);
  out.push_back(std::move(stack));
}

std::uint64_t JsonMatcher::next_properties(const SchemaNode& n, int last) const {
  std::uint64_t set = 0;
  for (int j = last + 1; j < static_cast<int>(n.properties.size()); ++j) {
    set |= std::uint64_t{1} << j;
    if (n.properties[static_cast<std::size_t>(j)].required) break;  // cannot be skipped
  }
  return set;
}

int JsonMatcher::rest_required(const SchemaNode& n, int last) const {
  int total = 0;
  for (int j = last + 1; j < static_cast<int>(n.properties.size()); ++j) {
    const auto& p = n.properties[static_cast<std::size_t>(j)];
    if (p.required)
      total += 1 + static_cast<int>(p.key_json.size()) + 1 + schema_->node(p.node).min_chars;
  }
  return total;
}

void JsonMatcher::step_object(Stack& stack, unsigned char c, std::vector<Stack>& out) const {
  Frame& f = stack.back();
  const SchemaNode* n = node_of(f);
  const bool free = !n || n->free_properties;
  auto value_frame = [&](int node) {
    Frame v;
    v.type = Type::kValue;
    v.node = node;
    v.depth = static_cast<std::int16_t>(f.depth + 1);
    return v;
  };
  switch (f.phase) {
    case kAfterOpen:
    case kAfterComma:
      if (c == '}' && f.phase == kAfterOpen && (free || rest_required(*n, f.count) == 0)) {
        finish_value(stack);
        break;
      }
      if (c != '"') return;
      if (free) {
        f.phase = kInKey;
        Frame key;
        key.type = Type::kString;
        key.key = true;
        key.depth = f.depth;
        stack.push_back(key);
        break;
      }
      f.set = next_properties(*n, f.count);
      if (!f.set) return;
      f.phase = kInKey;
      f.key_pos = 1;  // every name starts with its quote
      break;
    case kInKey: {
      // Only a schema's object gets here (a free one's name is a string frame above it).
      std::uint64_t still = 0;
      int chosen = -1;
      for (std::size_t j = 0; j < n->properties.size(); ++j) {
        if (!(f.set >> j & 1)) continue;
        const std::string& name = n->properties[j].key_json;
        const auto pos = static_cast<std::size_t>(f.key_pos);
        if (pos < name.size() && static_cast<unsigned char>(name[pos]) == c) {
          still |= std::uint64_t{1} << j;
          if (pos + 1 == name.size()) chosen = static_cast<int>(j);
        }
      }
      if (!still) return;
      ++f.key_pos;
      f.set = still;
      if (chosen >= 0) {  // the closing quote: no other name goes on past it
        f.count = chosen;
        f.phase = kAfterKey;
      }
      break;
    }
    case kAfterKey:
      if (c != ':') return;
      f.phase = kInValue;
      stack.push_back(
          value_frame(free ? -1 : n->properties[static_cast<std::size_t>(f.count)].node));
      break;
    case kAfterValue:
      if (c == ',' && (free || next_properties(*n, f.count) != 0)) {
        f.phase = kAfterComma;
        break;
      }
      if (c == '}' && (free || rest_required(*n, f.count) == 0)) {
        finish_value(stack);
        break;
      }
      return;
    default:
      return;  // kInValue: the value's frame is on top
  }
  out.push_back(std::move(stack));
}

void JsonMatcher::step_array(Stack& stack, unsigned char c, std::vector<Stack>& out) const {
  Frame& f = stack.back();
  const SchemaNode* n = node_of(f);
  const int min_items = n ? n->min_items : 0;
  const int max_items = n ? n->max_items : -1;
  const int items = n ? n->items : -1;
  if ((f.phase == kAfterOpen || f.phase == kAfterValue) && c == ']') {
    if (f.count < min_items) return;
    finish_value(stack);
    out.push_back(std::move(stack));
    return;
  }
  if (f.phase == kAfterValue) {
    if (c != ',' || (max_items >= 0 && f.count >= max_items)) return;
    f.phase = kAfterComma;
    out.push_back(std::move(stack));
    return;
  }
  if (f.phase == kAfterOpen || f.phase == kAfterComma) {
    if (max_items == 0) return;
    f.phase = kInValue;
    const int depth = f.depth + 1;
    begin(std::move(stack), items, depth, c, out);
  }
}

int JsonMatcher::remaining(const Frame& f) const {
  const SchemaNode* n = node_of(f);
  auto min_of = [&](int node) { return node < 0 ? 1 : schema_->node(node).min_chars; };
  switch (f.type) {
    case Type::kValue:
      return min_of(f.node);
    case Type::kString: {
      const int pending = f.escape == 1 ? 1 : f.escape >= 2 ? 6 - f.escape : f.utf8;
      const int min_length = n && n->kind == SchemaNode::Kind::kString ? n->min_length : 0;
      const int written = f.count + (pending > 0 ? 1 : 0);
      return pending + std::max(0, min_length - written) + 1;
    }
    case Type::kNumber:
      return (f.phase == kZero || f.phase == kInt || f.phase == kFrac || f.phase == kExpDigits)
                 ? 0
                 : 1;
    case Type::kLiterals: {
      int best = kDead;
      const auto& values = literals_of(f);
      for (std::size_t i = 0; i < values.size(); ++i)
        if (f.set >> i & 1) best = std::min(best, static_cast<int>(values[i].size()) - f.count);
      return best;
    }
    case Type::kObject: {
      if (!n || n->free_properties) {
        switch (f.phase) {
          case kAfterOpen: return 1;
          case kInKey:
          case kAfterKey: return 3;  // ':', a one-byte value, '}'
          case kAfterComma: return 5;
          default: return 1;
        }
      }
      const int last = f.count;
      auto member = [&](int j) {  // property j (not yet written) and all that must follow it
        const auto& p = n->properties[static_cast<std::size_t>(j)];
        return static_cast<int>(p.key_json.size()) + 1 + schema_->node(p.node).min_chars +
               rest_required(*n, j) + 1;
      };
      switch (f.phase) {
        case kAfterOpen: {
          // The required members with a comma before each (none before the first) and '}'.
          const int rest = rest_required(*n, -1);
          return rest > 0 ? rest : 1;
        }
        case kAfterComma: {
          int best = kDead;
          const std::uint64_t next = next_properties(*n, last);
          for (std::size_t j = 0; j < n->properties.size(); ++j)
            if (next >> j & 1) best = std::min(best, member(static_cast<int>(j)));
          return best;
        }
        case kInKey: {
          int best = kDead;
          for (std::size_t j = 0; j < n->properties.size(); ++j)
            if (f.set >> j & 1) best = std::min(best, member(static_cast<int>(j)) - f.key_pos);
          return best;
        }
        case kAfterKey:
          return 1 + schema_->node(n->properties[static_cast<std::size_t>(last)].node).min_chars +
                 rest_required(*n, last) + 1;
        default:  // kInValue, kAfterValue
          return rest_required(*n, last) + 1;
      }
    }
    case Type::kArray: {
      const int min_items = n ? n->min_items : 0;
      const int item = min_of(n ? n->items : -1);
      auto more = [&](int done) { return std::max(0, min_items - done) * (1 + item); };
      switch (f.phase) {
        case kAfterOpen:
          return min_items == 0 ? 1 : min_items * item + (min_items - 1) + 1;
        case kInValue: return more(f.count + 1) + 1;
        case kAfterComma: return item + more(f.count + 1) + 1;
        default: return more(f.count) + 1;
      }
    }
  }
  return kDead;
}

int JsonMatcher::remaining(const Stack& s) const {
  int total = 0;
  for (const Frame& f : s) total += remaining(f);
  return total;
}

int JsonMatcher::min_remaining() const {
  int best = kDead;
  for (const Stack& s : stacks_) best = std::min(best, remaining(s));
  return best;
}

}  // namespace herd::grammar
