// The architectures herd knows. Adding one: write arch_NAME.cpp defining NAME_architecture(),
// declare it here and list it in kArchitectures (arch_registry.cpp).
#pragma once

#include "model/architecture.h"
#include "util/error.h"

namespace herd::model {

const Architecture& llama_architecture();
const Architecture& qwen2_architecture();
const Architecture& qwen2moe_architecture();
const Architecture& qwen3_architecture();
const Architecture& qwen3moe_architecture();
const Architecture& deepseek2_architecture();

}  // namespace herd::model
