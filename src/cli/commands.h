// Each subcommand adds itself to the CLI and returns the function that runs it once parsed.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace herd::cli {

using CommandFn = std::function<int()>;

CommandFn add_run_command(CLI::App& app);
CommandFn add_logits_command(CLI::App& app);
CommandFn add_inspect_command(CLI::App& app);
CommandFn add_bench_command(CLI::App& app);
CommandFn add_synth_command(CLI::App& app);
CommandFn add_serve_command(CLI::App& app);
CommandFn add_demo_command(CLI::App& app);
CommandFn add_cluster_command(CLI::App& app);

}  // namespace herd::cli
