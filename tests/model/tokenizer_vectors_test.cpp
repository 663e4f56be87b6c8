// llama.cpp's tokenizer test vectors (models/ggml-vocab-*.gguf.inp/.out, made with the Hugging
// Face tokenizers): every case must encode to exactly the reference ids, without BOS, as
// llama.cpp's test-tokenizer-0 runs them; and decode back to the input where that is lossless.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gguf/reader.h"
#include "model/tokenizer.h"
#include "support/test_data.h"

namespace herd::model {
namespace {

struct Case {
  std::string text;
  std::vector<std::int32_t> ids;
};

std::vector<Case> read_cases(const std::filesystem::path& inp, const std::filesystem::path& out) {
  const std::string text = herd::testing::read_text(inp);
  const std::string separator = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (std::size_t pos = 0;;) {
    const std::size_t hit = text.find(separator, pos);
    if (hit == std::string::npos) break;
    inputs.push_back(text.substr(pos, hit - pos));
    pos = hit + separator.size();
  }
  std::vector<Case> cases;
  std::istringstream lines(herd::testing::read_text(out));
  std::string line;
  for (const std::string& input : inputs) {
    if (!std::getline(lines, line)) break;
    Case c{input, {}};
    std::istringstream ids(line);
    for (std::int32_t id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(cases.size(), inputs.size()) << out << " has fewer lines than " << inp << " has cases";
  return cases;
}

std::string ids_text(const std::vector<std::int32_t>& ids) {
  std::string s;
  for (auto id : ids) s += std::to_string(id) + " ";
  return s;
}

void check_vectors(const Tokenizer& tok, const std::string& vocab_name, bool check_round_trip) {
  const std::string base = "models/llama.cpp-vocab/ggml-vocab-" + vocab_name + ".gguf";
  const auto inp = herd::testing::shared_file(base + ".inp");
  const auto out = herd::testing::shared_file(base + ".out");
  ASSERT_FALSE(inp.empty() || out.empty()) << base << ".inp/.out missing";
  const auto cases = read_cases(inp, out);
  ASSERT_GT(cases.size(), 30u);
  int failures = 0;
  for (const Case& c : cases) {
    const auto got = tok.encode(c.text, /*add_special=*/false, /*parse_special=*/false);
    EXPECT_EQ(got, c.ids) << vocab_name << " input '" << c.text << "'\n got:  " << ids_text(got)
                          << "\n want: " << ids_text(c.ids);
    if (got != c.ids) ++failures;
    if (check_round_trip) {
      EXPECT_EQ(tok.decode(got), c.text) << vocab_name << " round trip";
    }
  }
  EXPECT_EQ(failures, 0) << vocab_name;
}

class GgufVocabTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufVocabTest, EncodesLlamaCppVectorsAndRoundTrips) {
  const std::string name = GetParam();
  HERD_REQUIRE_SHARED(path, "models/llama.cpp-vocab/ggml-vocab-" + name + ".gguf");
  const auto file = gguf::File::open(path.string());
  const auto tok = Tokenizer::from_gguf(file.metadata());
  check_vectors(*tok, name, /*check_round_trip=*/true);
}

INSTANTIATE_TEST_SUITE_P(Vocabs, GgufVocabTest,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "deepseek-llm",
                                           "deepseek-coder", "falcon", "starcoder", "refact",
                                           "mpt"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

// The tokenizer.ggml.* keys llama.cpp's converter would write for a tokenizer.json, so that the
// GGUF path with pre "llama-bpe" / "qwen2" meets the vectors whose .gguf is not in the snapshot.
gguf::Metadata metadata_from_tokenizer_json(const std::filesystem::path& path, const char* pre) {
  using gguf::Value;
  using gguf::ValueType;
  std::ifstream in(path);
  const auto root = nlohmann::json::parse(in);
  std::vector<std::string> texts;
  std::vector<std::int64_t> types;
  auto put = [&](std::int64_t id, std::string text, std::int64_t type) {
    if (id >= static_cast<std::int64_t>(texts.size())) {
      texts.resize(id + 1);
      types.resize(id + 1, 5);
    }
    texts[id] = std::move(text);
    types[id] = type;
  };
  for (const auto& [text, id] : root["model"]["vocab"].items())
    put(id.get<std::int64_t>(), text, 1);
  for (const auto& t : root["added_tokens"]) {
    put(t["id"].get<std::int64_t>(), t["content"].get<std::string>(),
        t["special"].get<bool>() ? 3 : 4);
  }
  auto array = [](ValueType type, std::vector<Value> items) {
    return Value{ValueType::kArray, gguf::Array{type, std::move(items)}};
  };
  std::vector<Value> tokens, token_types, merges;
  for (auto& t : texts) tokens.push_back(Value{ValueType::kString, std::move(t)});
  for (auto t : types) token_types.push_back(Value{ValueType::kInt32, t});
  for (const auto& m : root["model"]["merges"]) {
    const std::string joined = m.is_string()
                                   ? m.get<std::string>()
                                   : m[0].get<std::string>() + " " + m[1].get<std::string>();
    merges.push_back(Value{ValueType::kString, joined});
  }
  gguf::Metadata md;
  md.set("tokenizer.ggml.model", Value{ValueType::kString, std::string("gpt2")});
  md.set("tokenizer.ggml.pre", Value{ValueType::kString, std::string(pre)});
  md.set("tokenizer.ggml.tokens", array(ValueType::kString, std::move(tokens)));
  md.set("tokenizer.ggml.token_type", array(ValueType::kInt32, std::move(token_types)));
  md.set("tokenizer.ggml.merges", array(ValueType::kString, std::move(merges)));
  return md;
}

TEST(TokenizerGgufVectors, LlamaBpeAndQwen2PreTokenizersFromGgufKeys) {
  HERD_REQUIRE_SHARED(llama3, "models/tokenizers/llama3.tokenizer.json");
  HERD_REQUIRE_SHARED(qwen3, "models/tokenizers/qwen3.tokenizer.json");
  check_vectors(*Tokenizer::from_gguf(metadata_from_tokenizer_json(llama3, "llama-bpe")),
                "llama-bpe", /*check_round_trip=*/false);
  check_vectors(*Tokenizer::from_gguf(metadata_from_tokenizer_json(qwen3, "qwen2")), "qwen2",
                /*check_round_trip=*/false);
}

TEST(TokenizerJsonVectors, Llama3MatchesLlamaBpeVectors) {
  HERD_REQUIRE_SHARED(path, "models/tokenizers/llama3.tokenizer.json");
  const auto tok = Tokenizer::from_tokenizer_json(path.string());
  check_vectors(*tok, "llama-bpe", /*check_round_trip=*/true);
}

TEST(TokenizerJsonVectors, Qwen3MatchesQwen2AndDeepseekR1QwenVectors) {
  HERD_REQUIRE_SHARED(path, "models/tokenizers/qwen3.tokenizer.json");
  const auto tok = Tokenizer::from_tokenizer_json(path.string());
  // Qwen normalizes to NFC, so decoding gives back the NFC form; the inputs already are.
  check_vectors(*tok, "qwen2", /*check_round_trip=*/true);
  // DeepSeek-R1-Distill-Qwen keeps Qwen2's vocabulary and pre-tokenizer.
  check_vectors(*tok, "deepseek-r1-qwen", /*check_round_trip=*/true);
}

}  // namespace
}  // namespace herd::model
