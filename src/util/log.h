// Structured, quiet-by-default logging over spdlog. Default level is warn; `-v` raises it.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace herd::log {

// level: "trace", "debug", "info", "warn", "error", "off". HERD_LOG overrides when set.
void init(const std::string& level = "warn");

using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::trace;
using spdlog::warn;

}  // namespace herd::log
