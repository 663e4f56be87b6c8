// herd run: generate text (or token ids) from a prompt on this machine.
#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "engine/generator.h"
#include "engine/local_pipeline.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace herd::cli {
namespace {

struct RunOptions {
  std::string model_path;
  std::string prompt;
  std::string tokens;
  std::string system;
  int n_predict = 128;
  int n_ctx = 0;
  int threads = 0;
  bool chat = false;
  bool ids = false;
  bool ignore_eos = false;
  std::vector<std::string> stop;
  engine::SamplingParams sampling;
};

int run_run(RunOptions o) {
  auto model = load_model(o.model_path);
  auto tokenizer = model::Tokenizer::from_gguf(model->file().metadata());
  int n_ctx =
      o.n_ctx > 0
          ? o.n_ctx
          : std::min(model->hparams().n_ctx_train > 0 ? model->hparams().n_ctx_train : 4096, 4096);
  ThreadPool pool(resolve_threads(o.threads));
  engine::LocalPipeline pipeline(model, n_ctx, pool);
  engine::Generator generator(*tokenizer, pipeline);

  engine::GenerationParams params;
  params.max_tokens = o.n_predict;
  params.stop = o.stop;
  params.sampling = o.sampling;
  // --ids is the raw mode the reference checks use: exactly N ids, end-of-text or not.
  params.ignore_eos = o.ignore_eos || o.ids;

  auto on_text = [&](std::string_view piece) {
    if (!o.ids) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    return true;
  };

  engine::GenerationResult result;
  if (!o.tokens.empty()) {
    auto ids = parse_token_list(o.tokens, model->n_vocab());
    result = generator.generate(ids, params, on_text);
  } else if (o.chat) {
    std::string source =
        model->file().metadata().get_string("tokenizer.chat_template").value_or("");
    auto chat = model::ChatTemplate::for_model(source, *tokenizer);
    std::vector<model::ChatMessage> messages;
    if (!o.system.empty()) messages.push_back({"system", o.system});
    messages.push_back({"user", o.prompt});
    std::string text = chat.render(messages, /*add_generation_prompt=*/true);
    params.parse_special = true;
    result = generator.generate(text, params, on_text);
  } else if (o.prompt.empty()) {
    if (tokenizer->bos() < 0) fail_argument("this model has no BOS token: give a prompt with -p");
    std::int32_t bos = tokenizer->bos();
    result = generator.generate(std::span(&bos, 1), params, on_text);
  } else {
    result = generator.generate(o.prompt, params, on_text);
  }

  if (o.ids) {
    std::string line;
    for (std::size_t i = 0; i < result.tokens.size(); ++i)
      line += (i ? " " : "") + std::to_string(result.tokens[i]);
    fmt::print("{}\n", line);
  } else {
    fmt::print("\n");
  }
  const auto& s = result.stats;
  fmt::print(stderr,
             "prompt {} tokens, generated {} tokens ({}); time to first token {:.1f} ms; "
             "prefill {:.1f} tokens/s; decode {:.2f} tokens/s\n",
             s.prompt_tokens, s.generated_tokens, s.finish_reason, s.time_to_first_token_ms,
             s.prefill_tokens_per_s, s.decode_tokens_per_s);
  return 0;
}

}  // namespace

CommandFn add_run_command(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  o->sampling.seed = engine::kRandomSeed;
  auto* cmd = app.add_subcommand("run", "Generate text from a prompt on this machine");
  cmd->add_option("-m,--model", o->model_path, "GGUF model file")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text (empty: start from BOS)");
  cmd->add_option("--tokens", o->tokens, "Prompt as token ids, e.g. 1,403,407");
  cmd->add_flag("--chat", o->chat, "Wrap the prompt in the model's chat template");
  cmd->add_option("--system", o->system, "System message (with --chat)");
  cmd->add_option("-n,--n-predict", o->n_predict, "Tokens to generate")->capture_default_str();
  cmd->add_option("-c,--ctx", o->n_ctx, "Context length (default: the model's, at most 4096)");
  cmd->add_option("-t,--threads", o->threads, "Compute threads (default: one per core)");
  cmd->add_option("--temp", o->sampling.temperature, "Temperature (0: greedy)")
      ->capture_default_str();
  cmd->add_option("--top-k", o->sampling.top_k, "Top-k (0: off)")->capture_default_str();
  cmd->add_option("--top-p", o->sampling.top_p, "Top-p (1: off)")->capture_default_str();
  cmd->add_option("--min-p", o->sampling.min_p, "Min-p (0: off)")->capture_default_str();
  cmd->add_option("--repeat-penalty", o->sampling.repeat_penalty, "Repetition penalty (1: off)")
      ->capture_default_str();
  cmd->add_option("--repeat-last-n", o->sampling.repeat_last_n, "Window of the penalty")
      ->capture_default_str();
  cmd->add_option("--seed", o->sampling.seed, "Random seed (default: random)");
  cmd->add_option("--stop", o->stop, "Stop string (repeatable); not printed");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Keep generating past end-of-text tokens");
  cmd->add_flag("--ids", o->ids,
                "Print the generated token ids on one line instead of text (implies --ignore-eos)");
  return [o] { return run_run(*o); };
}

}  // namespace herd::cli
