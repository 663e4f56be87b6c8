#include "grammar/json_constraint.h"

#include <array>
#include <cmath>
#include <limits>

#include "grammar/json_matcher.h"
#include "model/tokenizer.h"

namespace herd::grammar {

class JsonConstraintState : public engine::ConstraintState {
 public:
  explicit JsonConstraintState(const JsonConstraint& c) : c_(c), matcher_(c.schema_) {}

  void mask(std::span<float> logits, std::int64_t tokens_left) override {
    constexpr float kNever = -std::numeric_limits<float>::infinity();
    const bool whole = matcher_.accepting();
    // The bytes that may come next, tried once: a token whose first byte is not among them is
    // out without copying the matcher for it (most tokens, in a large vocabulary).
    std::array<bool, 256> first{};
    for (int c = 0; c < 256; ++c) {
      JsonMatcher next = matcher_;
      first[static_cast<std::size_t>(c)] = next.feed(static_cast<unsigned char>(c));
    }
    bool any = false;
    for (std::size_t id = 0; id < logits.size(); ++id) {
      if (logits[id] == kNever) continue;
      bool allowed = false;
      if (id < c_.vocab_->ends.size() && c_.vocab_->ends[id]) {
        allowed = whole;
      } else if (id < c_.vocab_->pieces.size() && !c_.vocab_->pieces[id].empty() &&
                 first[static_cast<unsigned char>(c_.vocab_->pieces[id][0])]) {
        JsonMatcher next = matcher_;
        allowed = next.feed(c_.vocab_->pieces[id]) && next.min_remaining() <= tokens_left - 1;
      }
      if (allowed)
        any = true;
      else
        logits[id] = kNever;
    }
    // Nothing fits (the request left too few tokens for any document): end rather than write
    // what cannot be finished.
    if (!any && c_.vocab_->eos >= 0 && static_cast<std::size_t>(c_.vocab_->eos) < logits.size())
      logits[static_cast<std::size_t>(c_.vocab_->eos)] = 0;
  }

  void accept(std::int32_t token) override {
    if (token < 0 || static_cast<std::size_t>(token) >= c_.vocab_->pieces.size()) return;
    if (c_.vocab_->ends[static_cast<std::size_t>(token)]) return;
    matcher_.feed(c_.vocab_->pieces[static_cast<std::size_t>(token)]);
  }

  bool complete() const override { return matcher_.complete(); }

 private:
  const JsonConstraint& c_;
  JsonMatcher matcher_;
};

TokenPieces::TokenPieces(const model::Tokenizer& tokenizer) {
  const auto n = static_cast<std::size_t>(tokenizer.n_vocab());
  pieces.resize(n);
  ends.resize(n);
  for (std::size_t id = 0; id < n; ++id) {
    const auto token = static_cast<std::int32_t>(id);
    ends[id] = tokenizer.is_end_of_generation(token);
    if (!tokenizer.is_control(token)) pieces[id] = tokenizer.token_to_piece(token);
  }
  eos = tokenizer.eos();
}

JsonConstraint::JsonConstraint(Schema schema, std::shared_ptr<const TokenPieces> vocabulary)
    : schema_(std::move(schema)), vocab_(std::move(vocabulary)) {}

std::unique_ptr<engine::ConstraintState> JsonConstraint::start() const {
  return std::make_unique<JsonConstraintState>(*this);
}

}  // namespace herd::grammar
