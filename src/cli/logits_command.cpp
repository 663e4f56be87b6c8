// herd logits -m FILE --tokens 1,2,3 -o OUT.f32: the logits of every position, as raw
// little-endian float32 rows of n_vocab (the layout of the golden reference files).
#include <fmt/format.h>

#include <cstdio>
#include <fstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "engine/local_pipeline.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace herd::cli {
namespace {

struct LogitsOptions {
  std::string model_path;
  std::string tokens;
  std::string output;
  int threads = 0;
};

int run_logits(const LogitsOptions& o) {
  auto model = load_model(o.model_path);
  auto ids = parse_token_list(o.tokens, model->n_vocab());
  ThreadPool pool(resolve_threads(o.threads));
  engine::LocalPipeline pipeline(model, static_cast<int>(ids.size()), pool);
  std::vector<float> logits;
  pipeline.forward(ids, 0, /*all_logits=*/true, logits);
  std::ofstream out(o.output, std::ios::binary | std::ios::trunc);
  if (!out) fail("cannot write '{}'", o.output);
  out.write(reinterpret_cast<const char*>(logits.data()),
            static_cast<std::streamsize>(logits.size() * sizeof(float)));
  if (!out) fail("writing '{}' failed (disk full?)", o.output);
  fmt::print(stderr, "wrote {} rows x {} logits to {}\n", ids.size(), model->n_vocab(), o.output);
  return 0;
}

}  // namespace

CommandFn add_logits_command(CLI::App& app) {
  auto o = std::make_shared<LogitsOptions>();
  auto* cmd = app.add_subcommand(
      "logits", "Write the logits of every position of a token sequence as float32 rows");
  cmd->add_option("-m,--model", o->model_path, "GGUF model file")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--tokens", o->tokens, "Token ids, e.g. 1,403,407")->required();
  cmd->add_option("-o,--output", o->output, "Output file (raw little-endian float32)")->required();
  cmd->add_option("-t,--threads", o->threads, "Compute threads (default: one per core)");
  return [o] { return run_logits(*o); };
}

}  // namespace herd::cli
