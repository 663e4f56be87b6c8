// herd synth: write a model with random weights (for benchmarks and tests).
#include <fmt/format.h>

#include <cstdio>
#include <optional>

#include "cli/commands.h"
#include "gguf/reader.h"
#include "model/synthetic_model.h"
#include "util/error.h"

namespace herd::cli {
namespace {

struct SynthOptions {
  std::string output;
  std::string type = "q4_0";
  std::string shape = "1b";
  std::string vocab_from;
  int n_embd = 0, n_layer = 0, n_head = 0, n_kv_head = 0, n_ff = 0;
  std::uint64_t seed = 1;
};

int run_synth(const SynthOptions& o) {
  // "q4_k_m" is llama.cpp's mix of Q4_K and Q6_K rather than a tensor type.
  const bool q4_k_m = o.type == "q4_k_m" || o.type == "Q4_K_M";
  auto type = q4_k_m ? std::optional(tensor::Type::kQ4_K) : tensor::type_from_name(o.type);
  if (!type) fail_argument("--type '{}' is not a tensor type (try q4_0, q8_0, q4_k, f16)", o.type);
  model::SyntheticSpec spec;
  if (o.shape == "1b") {
    spec = model::llama_1b_spec(*type);
  } else if (o.shape == "tiny") {
    spec.type = *type;
  } else {
    fail_argument("--shape '{}': expected 1b or tiny", o.shape);
  }
  if (o.n_embd) spec.n_embd = o.n_embd;
  if (o.n_layer) spec.n_layer = o.n_layer;
  if (o.n_head) spec.n_head = o.n_head;
  if (o.n_kv_head) spec.n_kv_head = o.n_kv_head;
  if (o.n_ff) spec.n_ff = o.n_ff;
  spec.seed = o.seed;
  spec.q4_k_m_mix = q4_k_m;
  std::unique_ptr<gguf::File> vocab;
  if (!o.vocab_from.empty()) vocab = std::make_unique<gguf::File>(gguf::File::open(o.vocab_from));
  model::write_synthetic_model(spec, o.output, vocab ? &vocab->metadata() : nullptr,
                               [](int done, int total) {
                                 std::fprintf(stderr, "\rwriting tensors: %d/%d", done, total);
                                 if (done == total) std::fprintf(stderr, "\n");
                               });
  fmt::print(stderr, "wrote {}\n", o.output);
  return 0;
}

}  // namespace

CommandFn add_synth_command(CLI::App& app) {
  auto o = std::make_shared<SynthOptions>();
  auto* cmd = app.add_subcommand("synth", "Write a llama-architecture GGUF with random weights");
  cmd->add_option("-o,--output", o->output, "Output GGUF path")->required();
  cmd->add_option("--type", o->type,
                  "Type of the 2-D weights (f32 f16 bf16 q8_0 q4_0 q4_k ..., or the q4_k_m mix)")
      ->capture_default_str();
  cmd->add_option("--shape", o->shape, "1b (Llama-3.2-1B shape) or tiny")->capture_default_str();
  cmd->add_option("--vocab-from", o->vocab_from,
                  "Copy the tokenizer of this GGUF (e.g. stories260K.gguf)");
  cmd->add_option("--embd", o->n_embd, "Override embedding width");
  cmd->add_option("--layers", o->n_layer, "Override layer count");
  cmd->add_option("--heads", o->n_head, "Override attention heads");
  cmd->add_option("--kv-heads", o->n_kv_head, "Override KV heads");
  cmd->add_option("--ffn", o->n_ff, "Override feed-forward width");
  cmd->add_option("--seed", o->seed, "Random seed")->capture_default_str();
  return [o] { return run_synth(*o); };
}

}  // namespace herd::cli
