// A rule on what a generation may say — e.g. "a JSON document matching this schema" — enforced
// while sampling: before each token the scheduler asks the rule's state which tokens may come
// next and samples only among them (constrained sampling). The rule guarantees that what it
// allows can always be finished within the tokens the request has left.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

namespace herd::engine {

class ConstraintState {
 public:
  virtual ~ConstraintState() = default;
  // Sets the logits of the tokens that cannot come next to -infinity; `tokens_left` counts
  // this token too. End-of-generation tokens are allowed exactly when the text is complete.
  virtual void mask(std::span<float> logits, std::int64_t tokens_left) = 0;
  // The token sampled (one `mask` allowed).
  virtual void accept(std::int32_t token) = 0;
  // The text is complete and nothing may follow: the generation ends here.
  virtual bool complete() const = 0;
};

// Shared by the requests that use it (immutable); each generation gets its own state.
class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  virtual std::unique_ptr<ConstraintState> start() const = 0;
};

}  // namespace herd::engine
