#include "grammar/json_constraint.h"

#include <gtest/gtest.h>

#include <random>

#include "engine/sampler.h"
#include "model/tokenizer.h"
#include "support/test_data.h"

namespace herd::grammar {
namespace {

using nlohmann::json;

// Samples with random logits (as a model with random weights gives) under the constraint, until
// it says the document is complete or the budget runs out; the text written.
std::string sample_constrained(const JsonConstraint& c, const model::Tokenizer& tok, int budget,
                               std::uint64_t seed) {
  auto state = c.start();
  engine::SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = seed;
  engine::Sampler sampler(p);
  std::mt19937 rng(static_cast<std::uint32_t>(seed));
  std::normal_distribution<float> noise(0.0f, 3.0f);
  std::vector<float> logits(static_cast<std::size_t>(tok.n_vocab()));
  std::string text;
  for (int used = 0; used < budget && !state->complete(); ++used) {
    for (float& l : logits) l = noise(rng);
    state->mask(logits, budget - used);
    const std::int32_t id = sampler.sample(logits);
    if (tok.is_end_of_generation(id)) break;
    state->accept(id);
    text += tok.token_to_piece(id);
  }
  return text;
}

TEST(JsonConstraint, RandomLogitsAlwaysGiveAValidDocumentWithinMaxTokens) {
  HERD_REQUIRE_SHARED(path, "models/stories260K.gguf");
  const auto tok = model::Tokenizer::from_file(path.string());
  const json schema = json::parse(R"({
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 20}, "days": {"type": "integer"},
                   "unit": {"enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "days", "unit"], "additionalProperties": false})");
  const auto vocab = std::make_shared<const TokenPieces>(*tok);
  const JsonConstraint c(compile_schema(schema), vocab);
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const std::string text = sample_constrained(c, *tok, 48, seed);
    const json doc = json::parse(text, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << "seed " << seed << ": " << text;
    EXPECT_TRUE(doc["city"].is_string()) << text;
    EXPECT_TRUE(doc["days"].is_number_integer()) << text;
    EXPECT_TRUE(doc["unit"] == "celsius" || doc["unit"] == "fahrenheit") << text;
  }
  // Free JSON objects too, in a budget a rambling model would overrun.
  const JsonConstraint any(any_object_schema(), vocab);
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const std::string text = sample_constrained(any, *tok, 24, seed);
    const json doc = json::parse(text, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << "seed " << seed << ": " << text;
    EXPECT_TRUE(doc.is_object());
  }
}

}  // namespace
}  // namespace herd::grammar
