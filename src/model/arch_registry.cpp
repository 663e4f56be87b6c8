#include "model/arch_registry.h"

#include <array>
#include <utility>

namespace herd::model {

namespace {

// general.architecture name -> architecture. An explicit table rather than self-registering
// statics, which the linker drops from a static library when nothing references their file.
using Entry = std::pair<std::string_view, const Architecture& (*)()>;
constexpr std::array kArchitectures = {
    Entry{"llama", &llama_architecture},         Entry{"mistral", &llama_architecture},
    Entry{"qwen2", &qwen2_architecture},         Entry{"qwen2moe", &qwen2moe_architecture},
    Entry{"qwen3", &qwen3_architecture},         Entry{"qwen3moe", &qwen3moe_architecture},
    Entry{"deepseek2", &deepseek2_architecture},
};

}  // namespace

const Architecture* find_architecture(std::string_view name) {
  for (const auto& [key, factory] : kArchitectures) {
    if (key == name) return &factory();
  }
  return nullptr;
}

std::vector<std::string_view> architecture_names() {
  std::vector<std::string_view> names;
  for (const auto& entry : kArchitectures) names.push_back(entry.first);
  return names;
}

}  // namespace herd::model
