#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "util/error.h"

namespace herd::engine {
namespace {

// Best first; equal logits by lower id, so every step is deterministic.
template <typename C>
bool better(const C& a, const C& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

std::uint64_t resolve_seed(std::uint64_t seed) {
  if (seed != kRandomSeed) return seed;
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) | rd();
}

}  // namespace

Sampler::Sampler(const SamplingParams& params) : params_(params), seed_(resolve_seed(params.seed)) {
  auto bad = [](float v) { return !std::isfinite(v); };
  if (std::isnan(params.temperature)) fail_argument("temperature must be a number (0 = greedy)");
  if (bad(params.top_p) || params.top_p < 0.0f || params.top_p > 1.0f) {
    fail_argument("top_p must be between 0 and 1 (got {})", params.top_p);
  }
  if (bad(params.min_p) || params.min_p < 0.0f || params.min_p > 1.0f) {
    fail_argument("min_p must be between 0 and 1 (got {})", params.min_p);
  }
  if (bad(params.repeat_penalty) || params.repeat_penalty <= 0.0f) {
    fail_argument("repeat_penalty must be positive (1 = off, got {})", params.repeat_penalty);
  }
  if (params.repeat_last_n < 0) {
    fail_argument("repeat_last_n must be >= 0 (got {})", params.repeat_last_n);
  }
  if (bad(params.presence_penalty) || bad(params.frequency_penalty)) {
    fail_argument("presence_penalty and frequency_penalty must be finite numbers");
  }
  // mt19937 takes 32 bits; fold the 64-bit seed so both halves matter.
  rng_.seed(static_cast<std::uint32_t>(seed_ ^ (seed_ >> 32)));
}

void Sampler::accept(std::int32_t token) {
  if (params_.repeat_last_n == 0) return;
  history_.push_back(token);
  while (history_.size() > static_cast<std::size_t>(params_.repeat_last_n)) history_.pop_front();
}

void Sampler::apply_penalties(std::vector<float>& logits) const {
  bool active = params_.repeat_penalty != 1.0f || params_.presence_penalty != 0.0f ||
                params_.frequency_penalty != 0.0f;
  if (!active || history_.empty()) return;
  std::unordered_map<std::int32_t, int> counts;
  for (std::int32_t t : history_) ++counts[t];
  for (const auto& [token, count] : counts) {
    if (token < 0 || static_cast<std::size_t>(token) >= logits.size()) continue;
    float& l = logits[static_cast<std::size_t>(token)];
    // llama.cpp's llama_sampler_penalties: the repetition penalty pushes a logit toward
    // "less likely" whatever its sign.
    l = l <= 0.0f ? l * params_.repeat_penalty : l / params_.repeat_penalty;
    l -= static_cast<float>(count) * params_.frequency_penalty + params_.presence_penalty;
  }
}

void Sampler::keep_top_k(std::size_t k) {
  auto cmp = [](const Candidate& a, const Candidate& b) { return better(a, b); };
  if (k < candidates_.size()) {
    std::nth_element(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(k),
                     candidates_.end(), cmp);
    candidates_.resize(k);
  }
  std::sort(candidates_.begin(), candidates_.end(), cmp);
}

void Sampler::softmax(float temperature) {
  // Candidates are sorted, so the first holds the largest logit.
  const float max_logit = candidates_.front().logit;
  double sum = 0.0;
  for (Candidate& c : candidates_) {
    c.p = std::exp((c.logit - max_logit) / temperature);
    sum += c.p;
  }
  for (Candidate& c : candidates_) c.p = static_cast<float>(c.p / sum);
}

float Sampler::uniform() {
  return static_cast<float>(static_cast<double>(rng_()) * (1.0 / 4294967296.0));
}

std::int32_t Sampler::sample(std::span<const float> logits) {
  if (logits.empty()) fail_argument("cannot sample from an empty logits row");
  penalized_.assign(logits.begin(), logits.end());
  apply_penalties(penalized_);

  if (!(params_.temperature > 0.0f)) {
    // std::max_element returns the first maximum: lowest id on ties.
    auto it = std::max_element(penalized_.begin(), penalized_.end());
    return static_cast<std::int32_t>(it - penalized_.begin());
  }

  candidates_.clear();
  candidates_.reserve(penalized_.size());
  for (std::size_t i = 0; i < penalized_.size(); ++i) {
    if (std::isnan(penalized_[i])) continue;
    candidates_.push_back({static_cast<std::int32_t>(i), penalized_[i], 0.0f});
  }
  if (candidates_.empty()) fail("every logit is NaN: the model produced invalid numbers");
  std::size_t k = params_.top_k > 0 ? static_cast<std::size_t>(params_.top_k) : candidates_.size();
  keep_top_k(k);

  if (params_.top_p < 1.0f) {
    softmax(1.0f);
    double cumulative = 0.0;
    std::size_t keep = candidates_.size();
    for (std::size_t i = 0; i < candidates_.size(); ++i) {
      cumulative += candidates_[i].p;
      if (cumulative >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
    candidates_.resize(keep);
  }
  if (params_.min_p > 0.0f) {
    softmax(1.0f);
    const float threshold = params_.min_p * candidates_.front().p;
    std::size_t keep = 1;
    while (keep < candidates_.size() && candidates_[keep].p >= threshold) ++keep;
    candidates_.resize(keep);
  }

  softmax(params_.temperature);
  const float r = uniform();
  float cumulative = 0.0f;
  for (const Candidate& c : candidates_) {
    cumulative += c.p;
    if (r < cumulative) return c.id;
  }
  return candidates_.back().id;  // rounding left r just above the total
}

}  // namespace herd::engine
