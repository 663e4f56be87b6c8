// Helpers shared by subcommands: loading a model, parsing token lists, progress output.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"

namespace herd::cli {

// Opens and binds a GGUF model (all layers). Errors name the file and the problem.
std::shared_ptr<model::Model> load_model(const std::string& path);

// "1,2,3" or "1 2 3" -> ids. InvalidArgument on anything else or an id outside [0, n_vocab).
std::vector<std::int32_t> parse_token_list(const std::string& text, int n_vocab);

// Threads to use: the option when > 0, else one per core.
int resolve_threads(int option);

// Human-readable byte count: "524.3 MiB".
std::string format_bytes(double bytes);

}  // namespace herd::cli
