// herd: one LLM server from several machines. Subcommands live in one file each.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <utility>
#include <vector>

#include "cli/commands.h"
#include "util/error.h"
#include "util/log.h"

int main(int argc, char** argv) {
  CLI::App app{"herd: pool several machines into one LLM server (GGUF models, OpenAI API)"};
  app.require_subcommand(1);
  std::string log_level = "warn";
  app.add_option("--log", log_level, "Log level: trace, debug, info, warn, error, off")
      ->capture_default_str();

  std::vector<std::pair<CLI::App*, herd::cli::CommandFn>> commands;
  auto add = [&](herd::cli::CommandFn (*adder)(CLI::App&)) {
    std::size_t before = app.get_subcommands({}).size();
    herd::cli::CommandFn fn = adder(app);
    auto subs = app.get_subcommands({});
    commands.emplace_back(subs.size() > before ? subs.back() : nullptr, std::move(fn));
  };
  add(herd::cli::add_run_command);
  add(herd::cli::add_logits_command);
  add(herd::cli::add_inspect_command);
  add(herd::cli::add_bench_command);
  add(herd::cli::add_synth_command);
  add(herd::cli::add_serve_command);
  add(herd::cli::add_demo_command);
  add(herd::cli::add_cluster_command);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  herd::log::init(log_level);
  try {
    for (auto& [sub, fn] : commands) {
      if (sub && sub->parsed()) return fn();
    }
  } catch (const herd::Error& e) {
    std::fprintf(stderr, "herd: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "herd: unexpected error: %s\n", e.what());
    return 2;
  }
  return 0;
}
