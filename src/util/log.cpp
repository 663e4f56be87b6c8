#include "util/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>

namespace herd::log {

void init(const std::string& level) {
  std::string chosen = level;
  if (const char* env = std::getenv("HERD_LOG")) chosen = env;
  auto logger = spdlog::stderr_color_mt("herd");
  spdlog::set_default_logger(logger);
  // ISO time, level, then key=value pairs written by the caller.
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_level(spdlog::level::from_str(chosen));
}

}  // namespace herd::log
