// herd: one LLM server from several machines. Subcommands live in one file each.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "util/error.h"
#include "util/log.h"

int main(int argc, char** argv) {
  CLI::App app{"herd: pool several machines into one LLM server"};
  app.require_subcommand(1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}
