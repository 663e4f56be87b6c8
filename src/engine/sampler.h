// Picking the next token from logits. Semantics follow llama.cpp's default sampler chain:
//   penalties (repetition, presence, frequency over the last repeat_last_n tokens)
//   -> top-k -> top-p -> min-p -> temperature -> draw with a seeded std::mt19937.
// temperature <= 0 is greedy: exactly the argmax after penalties, lowest id on ties.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <vector>

namespace herd::engine {

// A seed of kRandomSeed asks for one drawn from std::random_device (Sampler::seed() tells it).
inline constexpr std::uint64_t kRandomSeed = ~std::uint64_t{0};

struct SamplingParams {
  float temperature = 0.8f;        // <= 0: greedy
  int top_k = 40;                  // <= 0: off
  float top_p = 0.95f;             // >= 1: off; in (0, 1]
  float min_p = 0.05f;             // <= 0: off; keep p >= min_p * p_max
  float repeat_penalty = 1.0f;     // 1: off; positive logits / penalty, negative * penalty
  int repeat_last_n = 64;          // window the penalties look at; 0: off
  float presence_penalty = 0.0f;   // subtracted once from every token in the window
  float frequency_penalty = 0.0f;  // subtracted per occurrence in the window
  std::uint64_t seed = kRandomSeed;
};

class Sampler {
 public:
  // Throws herd::InvalidArgument for values outside the ranges above.
  explicit Sampler(const SamplingParams& params);

  // The next token. `logits` is one row of n_vocab floats (not modified).
  std::int32_t sample(std::span<const float> logits);
  // Records a token (prompt or generated) for the penalties' window.
  void accept(std::int32_t token);
  // Forgets the accepted tokens (the random stream continues).
  void reset_history() { history_.clear(); }

  std::uint64_t seed() const { return seed_; }
  const SamplingParams& params() const { return params_; }

 private:
  struct Candidate {
    std::int32_t id;
    float logit;
    float p;
  };

  void apply_penalties(std::vector<float>& logits) const;
  void keep_top_k(std::size_t k);
  void softmax(float temperature);
  float uniform();

  SamplingParams params_;
  std::uint64_t seed_;
  std::mt19937 rng_;
  std::deque<std::int32_t> history_;   // the last repeat_last_n accepted tokens
  std::vector<float> penalized_;       // scratch: logits after penalties
  std::vector<Candidate> candidates_;  // scratch: surviving tokens, best first
};

}  // namespace herd::engine
