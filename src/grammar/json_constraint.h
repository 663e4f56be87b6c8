// Constrained sampling for JSON: a TokenConstraint (engine/constraint.h) that lets through only
// the tokens after which the text is still the beginning of a document of the schema, and that
// can still be finished in the tokens the request has left (JsonMatcher::min_remaining counts
// bytes; every byte has a token of its own in the byte-level and byte-fallback vocabularies of
// the models herd reads, so bytes bound tokens). End-of-generation tokens are allowed once the
// document is whole; the generation ends by itself when nothing may follow.
//
// Cost: the 256 possible next bytes are tried once per step; every candidate token whose first
// byte passes is then tried whole on a copy of the matcher.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/constraint.h"
#include "grammar/json_schema.h"

namespace herd::model {
class Tokenizer;
}

namespace herd::grammar {

// A vocabulary's tokens as bytes, read once per model and shared by every constraint.
struct TokenPieces {
  explicit TokenPieces(const model::Tokenizer& tokenizer);
  std::vector<std::string> pieces;  // per token: its bytes; empty for control tokens
  std::vector<bool> ends;           // per token: end of generation
  std::int32_t eos = -1;
};

class JsonConstraint : public engine::TokenConstraint {
 public:
  JsonConstraint(Schema schema, std::shared_ptr<const TokenPieces> vocabulary);

  std::unique_ptr<engine::ConstraintState> start() const override;

  const Schema& schema() const { return schema_; }

 private:
  friend class JsonConstraintState;
  Schema schema_;
  std::shared_ptr<const TokenPieces> vocab_;
};

}  // namespace herd::grammar
