// The generation loop: prompt -> one prefill forward -> sample, decode one token at a time ->
// text streamed through a callback. Stops on an end-of-generation token, max_tokens, or a stop
// string. The KV-cache prefix shared with the previous request is kept (Pipeline::truncate),
// so a chat that resends its history only prefills the new part.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/constraint.h"
#include "engine/pipeline.h"
#include "engine/sampler.h"

namespace herd::model {
class Tokenizer;
}

namespace herd::engine {

struct GenerationParams {
  int max_tokens = 256;           // tokens to sample at most; < 0: until the context is full
  std::vector<std::string> stop;  // stop strings: end generation, never emitted
  SamplingParams sampling;
  bool add_special = true;    // text prompts: add BOS as the vocabulary asks
  bool parse_special = true;  // text prompts: "<|im_start|>" etc. become special tokens
  bool ignore_eos = false;    // keep going past end-of-generation tokens
  bool cache_prompt = true;   // reuse a cached prefix of the prompt (the scheduler's slots)
  // Added to a token's logit before sampling (OpenAI's logit_bias): -100 bans it, +100 forces it.
  std::vector<std::pair<std::int32_t, float>> logit_bias;
  // What the text must be (e.g. JSON of a schema); null: anything. Enforced by the scheduler.
  std::shared_ptr<const TokenConstraint> constraint;
};

struct GenerationStats {
  std::int32_t prompt_tokens = 0;
  std::int32_t cached_prompt_tokens = 0;  // reused from the previous request, not prefilled
  std::int32_t generated_tokens = 0;      // sampled tokens, including a final end-of-generation
  double time_to_first_token_ms = 0.0;    // from the call to the first sampled token
  double prefill_tokens_per_s = 0.0;      // (prompt - cached) tokens over the prefill time
  double decode_tokens_per_s = 0.0;       // tokens after the first over the time after it
  std::string finish_reason;              // "stop", "length", or "cancelled" by the callback
};

struct GenerationResult {
  std::string text;                  // everything streamed (stop string excluded)
  std::vector<std::int32_t> tokens;  // generated ids, end-of-generation token excluded
  GenerationStats stats;
};

// Receives text as it becomes final: whole UTF-8 characters only, and nothing that may still
// turn out to be part of a stop string. Return false to cancel generation.
using TextCallback = std::function<bool(std::string_view piece)>;

// Checks a prompt against the vocabulary and the context: InvalidArgument when it is empty,
// holds ids outside [0, n_vocab), or leaves no room for params.max_tokens. Returns how many
// tokens may be generated (max_tokens, or what the context leaves when it is negative).
std::int64_t checked_max_tokens(std::span<const std::int32_t> prompt,
                                const GenerationParams& params, std::int64_t n_ctx,
                                std::int32_t n_vocab);

// The bytes token adds to the text, `previous` being the token before it (-1 at the start).
std::string token_text(const model::Tokenizer& tokenizer, std::int32_t token,
                       std::int32_t previous);

// One request at a time on sequence 0 of a pipeline (herd run, the tests); a server shares the
// pipeline between many requests with engine::Scheduler instead.
class Generator {
 public:
  // Both must outlive the Generator; it assumes it is the pipeline's only user.
  Generator(const model::Tokenizer& tokenizer, Pipeline& pipeline);

  // Throws herd::InvalidArgument when the prompt is empty, holds ids outside the vocabulary,
  // or prompt + max_tokens exceeds the context (nothing is truncated silently); herd::Error
  // from the pipeline propagates (the cached prefix is then forgotten).
  GenerationResult generate(std::string_view prompt, const GenerationParams& params,
                            const TextCallback& on_text = {});
  GenerationResult generate(std::span<const std::int32_t> prompt, const GenerationParams& params,
                            const TextCallback& on_text = {});

  // Forgets the cached prefix; the next request prefills from position 0.
  void reset_cache();
  // The tokens whose keys and values are in the pipeline's cache, in order.
  const std::vector<std::int32_t>& cached_tokens() const { return cached_; }

 private:
  std::int32_t prefill(std::span<const std::int32_t> prompt, std::vector<float>& logits);
  void check_logits(const std::vector<float>& logits) const;

  const model::Tokenizer& tokenizer_;
  Pipeline& pipeline_;
  std::vector<std::int32_t> cached_;
  bool cache_known_ = false;  // false until we have truncated the pipeline ourselves
};

}  // namespace herd::engine
