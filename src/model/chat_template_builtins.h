// The built-in parts of the Jinja subset: filters, tests, methods of strings/dicts/lists,
// global functions, and the operators shared by them. Names and behaviour follow Jinja2 and
// the extras transformers adds for chat templates (raise_exception, strftime_now, tojson).
#pragma once

#include <string>

#include "model/chat_template_value.h"

namespace herd::model::jinja {

struct Args {
  Array positional;
  Object named;

  // The argument at `index` or named `name`, else Undefined.
  Value get(std::size_t index, std::string_view name) const;
};

Value apply_filter(const std::string& name, const Value& input, const Args& args, int line);
bool apply_test(const std::string& name, const Value& input, const Args& args, int line);
Value call_method(const Value& self, const std::string& name, const Args& args, int line);
Value call_global(const std::string& name, const Args& args, int line);

Value get_attr(const Value& target, const std::string& name);
Value get_item(const Value& target, const Value& key, int line);
Value slice(const Value& target, const Value& start, const Value& stop, const Value& step,
            int line);
// The items a for loop visits: list items, dict keys, string characters (UTF-8 code points).
Array iterate(const Value& v, int line);

bool contains(const Value& container, const Value& item, int line);
bool compare(const Value& a, const Value& b, const std::string& op, int line);
Value arithmetic(const Value& a, const Value& b, const std::string& op, int line);

}  // namespace herd::model::jinja
