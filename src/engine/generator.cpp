#include "engine/generator.h"

#include <algorithm>
#include <chrono>

#include "engine/text_stream.h"
#include "model/tokenizer.h"
#include "util/error.h"

namespace herd::engine {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

std::int64_t checked_max_tokens(std::span<const std::int32_t> prompt,
                                const GenerationParams& params, std::int64_t n_ctx,
                                std::int32_t n_vocab) {
  const auto n_prompt = static_cast<std::int64_t>(prompt.size());
  if (prompt.empty()) fail_argument("the prompt is empty: generation needs at least one token");
  for (std::int32_t id : prompt) {
    if (id < 0 || id >= n_vocab) {
      fail_argument("prompt token id {} is outside the vocabulary (0..{})", id, n_vocab - 1);
    }
  }
  for (const auto& [id, bias] : params.logit_bias) {
    if (id < 0 || id >= n_vocab)
      fail_argument("logit_bias names token id {}, outside the vocabulary (0..{})", id,
                    n_vocab - 1);
  }
  const std::int64_t max_tokens = params.max_tokens < 0 ? n_ctx - n_prompt : params.max_tokens;
  if (n_prompt + max_tokens > n_ctx || (params.max_tokens < 0 && max_tokens <= 0)) {
    fail_argument(
        "the prompt has {} tokens and {} more were requested, but the context holds {}; "
        "shorten the prompt or ask for fewer tokens (max_tokens)",
        n_prompt, params.max_tokens < 0 ? std::int64_t{1} : max_tokens, n_ctx);
  }
  return max_tokens;
}

std::string token_text(const model::Tokenizer& tokenizer, std::int32_t token,
                       std::int32_t previous) {
  std::string piece = tokenizer.token_to_piece(token);
  // SentencePiece marks word starts with a space; right after BOS it is not part of the
  // text (llama2.c's and llama.cpp's decoders strip it the same way).
  if (previous >= 0 && previous == tokenizer.bos() && !piece.empty() && piece[0] == ' ')
    piece.erase(0, 1);
  return piece;
}

Generator::Generator(const model::Tokenizer& tokenizer, Pipeline& pipeline)
    : tokenizer_(tokenizer), pipeline_(pipeline) {}

void Generator::reset_cache() {
  cached_.clear();
  cache_known_ = false;
}

GenerationResult Generator::generate(std::string_view prompt, const GenerationParams& params,
                                     const TextCallback& on_text) {
  std::vector<std::int32_t> ids =
      tokenizer_.encode(prompt, params.add_special, params.parse_special);
  // A chat template that already wrote BOS, plus the tokenizer adding one, gives two; the
  // model was trained with one.
  const std::int32_t bos = tokenizer_.bos();
  if (params.add_special && bos >= 0 && ids.size() >= 2 && ids[0] == bos && ids[1] == bos) {
    ids.erase(ids.begin());
  }
  return generate(std::span<const std::int32_t>(ids), params, on_text);
}

void Generator::check_logits(const std::vector<float>& logits) const {
  if (logits.size() != static_cast<std::size_t>(pipeline_.n_vocab())) {
    fail("the pipeline returned {} logits but the vocabulary has {} tokens", logits.size(),
         pipeline_.n_vocab());
  }
}

// Runs the part of `prompt` that is not cached yet; returns how many positions were reused.
std::int32_t Generator::prefill(std::span<const std::int32_t> prompt, std::vector<float>& logits) {
  std::size_t keep = 0;
  if (cache_known_) {
    while (keep < cached_.size() && keep < prompt.size() && cached_[keep] == prompt[keep]) ++keep;
  }
  // The last prompt token must run again: its logits are what the first sample needs.
  keep = std::min(keep, prompt.size() - 1);
  if (!cache_known_ || keep < cached_.size()) pipeline_.truncate(static_cast<std::int32_t>(keep));
  cached_.resize(keep);
  cache_known_ = true;
  auto rest = prompt.subspan(keep);
  pipeline_.forward(rest, static_cast<std::int32_t>(keep), false, logits);
  cached_.insert(cached_.end(), rest.begin(), rest.end());
  check_logits(logits);
  return static_cast<std::int32_t>(keep);
}

GenerationResult Generator::generate(std::span<const std::int32_t> prompt,
                                     const GenerationParams& params, const TextCallback& on_text) {
  const Clock::time_point start = Clock::now();
  const std::int32_t n_ctx = pipeline_.n_ctx();
  const std::int32_t n_vocab = pipeline_.n_vocab();
  const auto n_prompt = static_cast<std::int64_t>(prompt.size());
  const std::int64_t max_tokens = checked_max_tokens(prompt, params, n_ctx, n_vocab);

  GenerationResult result;
  GenerationStats& stats = result.stats;
  stats.prompt_tokens = static_cast<std::int32_t>(n_prompt);
  stats.finish_reason = "length";
  Sampler sampler(params.sampling);
  for (std::int32_t id : prompt) sampler.accept(id);
  TextStream stream(params.stop);
  auto emit = [&](const std::string& text) {
    if (text.empty()) return true;
    result.text += text;
    return on_text ? on_text(text) : true;
  };

  if (max_tokens == 0) return result;
  std::vector<float> logits;
  Clock::time_point first_token_at;
  try {
    const Clock::time_point prefill_start = Clock::now();
    stats.cached_prompt_tokens = prefill(prompt, logits);
    const double prefill_ms = ms_between(prefill_start, Clock::now());
    const std::int32_t prefilled = stats.prompt_tokens - stats.cached_prompt_tokens;
    if (prefill_ms > 0) stats.prefill_tokens_per_s = prefilled / (prefill_ms / 1000.0);

    for (;;) {
      const std::int32_t token = sampler.sample(logits);
      sampler.accept(token);
      if (++stats.generated_tokens == 1) {
        first_token_at = Clock::now();
        stats.time_to_first_token_ms = ms_between(start, first_token_at);
      }
      if (!params.ignore_eos && tokenizer_.is_end_of_generation(token)) {
        stats.finish_reason = "stop";
        break;
      }
      result.tokens.push_back(token);
      bool stopped = false;
      const std::string piece =
          token_text(tokenizer_, token, cached_.empty() ? -1 : cached_.back());
      bool keep_going = emit(stream.push(piece, stopped));
      if (stopped) {
        stats.finish_reason = "stop";
        break;
      }
      if (!keep_going) {
        stats.finish_reason = "cancelled";
        break;
      }
      if (stats.generated_tokens >= max_tokens) break;
      const std::int32_t pos = static_cast<std::int32_t>(cached_.size());
      pipeline_.forward(std::span<const std::int32_t>(&token, 1), pos, false, logits);
      cached_.push_back(token);
      check_logits(logits);
    }
  } catch (...) {
    reset_cache();  // the pipeline's cache state is unknown after a failure
    throw;
  }
  // Held-back text was not a stop string after all. A cancelled stream stays quiet.
  if (stats.finish_reason == "cancelled") {
    result.text += stream.flush();
  } else {
    emit(stream.flush());
  }

  const double decode_ms = ms_between(first_token_at, Clock::now());
  if (stats.generated_tokens > 1 && decode_ms > 0) {
    stats.decode_tokens_per_s = (stats.generated_tokens - 1) / (decode_ms / 1000.0);
  }
  return result;
}

}  // namespace herd::engine
