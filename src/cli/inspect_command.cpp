// herd inspect FILE: architecture, hyper-parameters, tensor types and sizes of a GGUF file.
#include <fmt/format.h>

#include <map>

#include "cli/commands.h"
#include "cli/common.h"
#include "gguf/reader.h"
#include "model/model.h"
#include "util/error.h"

namespace herd::cli {
namespace {

struct InspectOptions {
  std::string path;
  bool all_metadata = false;
  bool tensors = true;
};

std::string value_summary(const gguf::Value& v) {
  if (v.is_array()) {
    const auto& a = v.as_array();
    return fmt::format("[{} x {}]", a.items.size(), gguf::value_type_name(a.element_type));
  }
  if (v.is_string()) {
    const std::string& s = v.as_string();
    if (s.size() > 80) return fmt::format("\"{}...\" ({} chars)", s.substr(0, 60), s.size());
    return fmt::format("\"{}\"", s);
  }
  if (v.type == gguf::ValueType::kBool) return v.as_bool() ? "true" : "false";
  if (v.is_float()) return fmt::format("{}", v.as_float());
  return fmt::format("{}", v.as_int());
}

int run_inspect(const InspectOptions& o) {
  auto file = std::make_shared<const gguf::File>(gguf::File::open(o.path));
  fmt::print("file: {}\n", o.path);
  fmt::print("gguf version {}, {} metadata keys, {} tensors, alignment {}\n", file->version(),
             file->metadata().entries().size(), file->tensors().size(), file->alignment());

  fmt::print("\nmetadata:\n");
  for (const auto& [key, value] : file->metadata().entries()) {
    bool tokenizer_array = key.rfind("tokenizer.", 0) == 0 && value.is_array();
    if (!o.all_metadata && tokenizer_array) continue;
    fmt::print("  {:<48} {}\n", key, value_summary(value));
  }

  if (!file->tensors().empty()) {
    try {
      auto model = model::Model::load(file);
      fmt::print("\nmodel:\n{}\n", model->summary());
    } catch (const Error& e) {
      fmt::print("\nmodel: cannot be run by herd: {}\n", e.what());
    }
  }

  std::map<std::string, std::pair<int, std::uint64_t>> by_type;
  std::uint64_t total = 0;
  std::int64_t params = 0;
  for (const auto& t : file->tensors()) {
    auto& [count, bytes] = by_type[std::string(tensor::type_name(t.type))];
    ++count;
    bytes += t.n_bytes;
    total += t.n_bytes;
    params += t.n_elements;
  }
  fmt::print("\ntensor types:\n");
  for (const auto& [name, cb] : by_type)
    fmt::print("  {:<6} {:>5} tensors {:>12}\n", name, cb.first, format_bytes(cb.second));
  fmt::print("  total  {:>5} tensors {:>12}, {:.3f} B parameters\n", file->tensors().size(),
             format_bytes(static_cast<double>(total)), params / 1e9);

  if (o.tensors && !file->tensors().empty()) {
    fmt::print("\ntensors:\n");
    for (const auto& t : file->tensors()) {
      std::string dims;
      for (std::size_t i = 0; i < t.dims.size(); ++i)
        dims += (i ? " x " : "") + std::to_string(t.dims[i]);
      fmt::print("  {:<40} {:<6} [{}] {}\n", t.name, tensor::type_name(t.type), dims,
                 format_bytes(static_cast<double>(t.n_bytes)));
    }
  }
  return 0;
}

}  // namespace

CommandFn add_inspect_command(CLI::App& app) {
  auto o = std::make_shared<InspectOptions>();
  auto* cmd = app.add_subcommand("inspect",
                                 "Show a GGUF file's architecture, hyper-parameters, "
                                 "tensor types and sizes");
  cmd->add_option("file", o->path, "GGUF model file")->required()->check(CLI::ExistingFile);
  cmd->add_flag("--all-metadata", o->all_metadata, "Also list tokenizer arrays");
  cmd->add_flag("!--no-tensors", o->tensors, "Do not list every tensor");
  return [o] { return run_inspect(*o); };
}

}  // namespace herd::cli
