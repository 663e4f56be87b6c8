// Tokenizer behaviour beyond the reference vectors: special tokens, BOS/EOS, decoding, the
// real stories260K vocabulary, and the errors for unusable input.
#include "model/tokenizer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "gguf/reader.h"
#include "model/pretokenizer.h"
#include "model/unicode.h"
#include "support/test_data.h"
#include "util/error.h"

namespace herd::model {
namespace {

using Ids = std::vector<std::int32_t>;

TEST(ByteLevel, EveryByteRoundTripsThroughItsPrintableCharacter) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string encoded = byte_level_encode(all);
  EXPECT_EQ(byte_level_decode(encoded), all);
  // GPT-2's alphabet: space is Ġ (U+0120), newline Ċ (U+010A), printable ASCII unchanged.
  EXPECT_EQ(byte_level_encode(" \nA"),
            "\xC4\xA0\xC4\x8A"
            "A");
  EXPECT_EQ(unicode_to_byte(U'Ġ'), ' ');
  EXPECT_EQ(unicode_to_byte(U'€'), -1);
}

TEST(Utf8, MalformedInputAdvancesOneByteWithReplacementCharacter) {
  const std::string text = "a\xE2\x82\xAC\xFF\xE2";
  std::size_t pos = 0;
  EXPECT_EQ(next_codepoint(text, pos), U'a');
  EXPECT_EQ(next_codepoint(text, pos), U'€');
  EXPECT_EQ(next_codepoint(text, pos), 0xFFFDu);
  EXPECT_EQ(pos, 5u);
  EXPECT_EQ(next_codepoint(text, pos), 0xFFFDu);  // truncated sequence at the end
  EXPECT_EQ(pos, text.size());
}

TEST(Utf8, ValidityRejectsStrayOverlongAndSurrogateSequences) {
  EXPECT_TRUE(is_valid_utf8("plain ascii, é, 你好, 🦙, \xEF\xBF\xBD"));
  EXPECT_FALSE(is_valid_utf8("\xFF"));
  EXPECT_FALSE(is_valid_utf8("abc\xE2\x82"));   // truncated
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));      // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));  // surrogate U+D800
}

std::vector<std::string> split(const PreTokenizer& pre, std::string_view text) {
  std::vector<std::string> out;
  for (auto piece : pre.split(text)) out.emplace_back(piece);
  return out;
}

TEST(PreTokenizer, Llama3SplitsContractionsLettersDigitGroupsAndTrailingSpace) {
  const PreTokenizer pre(PreTokenizer::patterns_for("llama-bpe"));
  using V = std::vector<std::string>;
  EXPECT_EQ(split(pre, "I'VE 1234567 héllo,  world  \n"),
            (V{"I", "'VE", " ", "123", "456", "7", " héllo", ",", " ", " world", "  \n"}));
  EXPECT_TRUE(pre.split("").empty());
}

TEST(PreTokenizer, SequenceOfRegexesKeepsTextBetweenMatches) {
  // DeepSeek Coder: newlines, letters, punctuation, CJK and single digits are isolated in turn.
  const PreTokenizer pre(PreTokenizer::patterns_for("deepseek-coder"));
  using V = std::vector<std::string>;
  EXPECT_EQ(split(pre, "ab12\n你好!"), (V{"ab", "1", "2", "\n", "你好", "!"}));
}

TEST(PreTokenizer, EveryKnownFamilyCompilesUnderIcu) {
  for (const char* name :
       {"default", "gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "deepseek-coder", "deepseek-v3",
        "falcon", "starcoder", "refact", "mpt", "command-r", "smollm", "bloom", "viking", "tekken",
        "gpt-4o", "chameleon"}) {
    const PreTokenizer pre(PreTokenizer::patterns_for(name));
    const std::string text = "Hello, world! 12345 \n\t 你好 🦙 don't";
    std::string joined;
    for (auto piece : pre.split(text)) joined += piece;
    EXPECT_EQ(joined, text) << name << ": pieces must cover the text exactly";
  }
}

TEST(PreTokenizer, UnknownNameIsAFormatError) {
  EXPECT_THROW(PreTokenizer::patterns_for("no-such-pre"), FormatError);
  EXPECT_THROW(PreTokenizer({"[unclosed"}), FormatError);
}

// Loaded once per test binary: the large vocabularies take a noticeable part of a second each.
const Tokenizer* load_json(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    const auto path = herd::testing::shared_file("models/tokenizers/" + name);
    it = cache.emplace(name, path.empty() ? nullptr : Tokenizer::from_tokenizer_json(path.string()))
             .first;
  }
  return it->second.get();
}

TEST(TokenizerJson, Qwen3ChatMarkersAreSpecialOnlyWhenParsingSpecials) {
  const auto tok = load_json("qwen3.tokenizer.json");
  if (!tok) GTEST_SKIP() << "qwen3.tokenizer.json not found";
  const std::string text = "<|im_start|>user\nhi<|im_end|>";
  const Ids with = tok->encode(text, false, /*parse_special=*/true);
  ASSERT_GE(with.size(), 3u);
  EXPECT_EQ(with.front(), tok->find_token("<|im_start|>"));
  EXPECT_EQ(with.back(), tok->find_token("<|im_end|>"));
  EXPECT_EQ(with.front(), 151644);
  const Ids without = tok->encode(text, false, /*parse_special=*/false);
  EXPECT_GT(without.size(), with.size());
  EXPECT_EQ(std::count(without.begin(), without.end(), 151644), 0);
  EXPECT_EQ(tok->decode(without), text);
  // Control tokens are left out of decoded text but have a piece.
  EXPECT_EQ(tok->decode(with), "user\nhi");
  EXPECT_EQ(tok->token_to_piece(151645), "<|im_end|>");
  // <think> is a non-special added token: always matched, always text.
  const Ids think = tok->encode("<think>ok</think>", false, false);
  EXPECT_EQ(think.front(), 151667);
  EXPECT_EQ(think.back(), 151668);
  EXPECT_EQ(tok->decode(think), "<think>ok</think>");
}

TEST(TokenizerJson, MalformedUtf8RoundTripsByteForByte) {
  const auto tok = load_json("qwen3.tokenizer.json");
  if (!tok) GTEST_SKIP() << "qwen3.tokenizer.json not found";
  const std::string text =
      "ok \xFF\xFE"
      "bad\xE2\x82 cafe\xCC\x81 end";
  EXPECT_EQ(tok->decode(tok->encode(text, false, false)), text);
  // Valid text is NFC-normalized first, as Qwen's tokenizer.json asks: e + U+0301 becomes é.
  EXPECT_EQ(tok->encode("cafe\xCC\x81", false, false), tok->encode("caf\xC3\xA9", false, false));
}

TEST(TokenizerJson, Qwen3HasNoBosAndEndsTurnsAtImEnd) {
  const auto tok = load_json("qwen3.tokenizer.json");
  if (!tok) GTEST_SKIP() << "qwen3.tokenizer.json not found";
  EXPECT_EQ(tok->n_vocab(), 151669);
  EXPECT_FALSE(tok->adds_bos());
  EXPECT_EQ(tok->eos(), 151645);  // tokenizer_config.json: eos_token <|im_end|>
  EXPECT_TRUE(tok->is_end_of_generation(151645));
  EXPECT_TRUE(tok->is_end_of_generation(151643));  // <|endoftext|>
  EXPECT_FALSE(tok->is_end_of_generation(151644));
  EXPECT_EQ(tok->encode("Hello", true, false), tok->encode("Hello", false, false));
}

TEST(TokenizerJson, Llama3AddsBeginOfTextAndKnowsEotId) {
  const auto tok = load_json("llama3.tokenizer.json");
  if (!tok) GTEST_SKIP() << "llama3.tokenizer.json not found";
  EXPECT_EQ(tok->n_vocab(), 128256);
  EXPECT_TRUE(tok->adds_bos());
  EXPECT_EQ(tok->bos(), 128000);
  EXPECT_EQ(tok->eos(), 128001);
  const Ids ids = tok->encode("Hello world", true, false);
  EXPECT_EQ(ids, (Ids{128000, 9906, 1917}));
  EXPECT_EQ(tok->decode(ids), "Hello world");
  EXPECT_TRUE(tok->is_end_of_generation(tok->find_token("<|eot_id|>")));
  EXPECT_TRUE(tok->is_control(128000));
  EXPECT_EQ(tok->token_text(9906), "Hello");
}

TEST(TokenizerJson, SmolLm2SplitsDigitsAndRoundTrips) {
  const auto tok = load_json("smollm2-135m-instruct.tokenizer.json");
  if (!tok) GTEST_SKIP() << "smollm2 tokenizer.json not found";
  const Ids ids = tok->encode("year 2024", false, false);
  ASSERT_EQ(ids.size(), 6u);  // "year", " ", and one token per digit
  for (int i = 2; i < 6; ++i) EXPECT_EQ(tok->token_to_piece(ids[i]).size(), 1u);
  const std::string text = "Hi there!\n\tcode: x = [1, 2];  // ünïcödé 🦙";
  EXPECT_EQ(tok->decode(tok->encode(text, false, false)), text);
}

TEST(TokenizerJson, MissingOrBrokenFileIsAnError) {
  EXPECT_THROW(Tokenizer::from_tokenizer_json("/nonexistent/tokenizer.json"), Error);
  const auto dir = herd::testing::temp_dir("tokenizer_json");
  const auto bad = (dir / "tokenizer.json").string();
  std::ofstream(bad) << R"({"model": {"type": "Unigram", "vocab": []}})";
  EXPECT_THROW(Tokenizer::from_tokenizer_json(bad), FormatError);
  std::ofstream(bad) << R"({"model": {"type": "BPE", "vocab": {)";
  EXPECT_THROW(Tokenizer::from_tokenizer_json(bad), FormatError);
}

TEST(Stories260K, DecodesTheGoldenGenerationToTheGoldenText) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  HERD_REQUIRE_SHARED(ids_path, "models/stories260K.golden_greedy_ids.txt");
  HERD_REQUIRE_SHARED(text_path, "models/stories260K.golden_greedy_n200.txt");
  const auto tok = Tokenizer::from_gguf(gguf::File::open(model.string()).metadata());
  EXPECT_EQ(tok->n_vocab(), 512);
  EXPECT_EQ(tok->bos(), 1);
  EXPECT_EQ(tok->eos(), 2);
  EXPECT_TRUE(tok->adds_bos());
  const Ids ids = herd::testing::read_ids(ids_path);
  ASSERT_EQ(ids.size(), 200u);
  std::string golden = herd::testing::read_text(text_path);
  if (!golden.empty() && golden.back() == '\n') golden.pop_back();  // run.c's final newline
  Ids with_bos{1};
  with_bos.insert(with_bos.end(), ids.begin(), ids.end());
  EXPECT_EQ(tok->decode(with_bos), golden);
}

TEST(Stories260K, EncodesWithBosAndRoundTrips) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  const auto tok = Tokenizer::from_gguf(gguf::File::open(model.string()).metadata());
  const std::string text = "Once upon a time, there was a little girl named Lily.";
  const Ids ids = tok->encode(text, true, false);
  ASSERT_GT(ids.size(), 2u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], 403);  // "▁Once", the first token of the golden story
  EXPECT_EQ(tok->decode(ids), text);
  // Characters outside the 512-token vocabulary fall back to <0xXX> byte tokens.
  const std::string rare = "Zoë 🦙\t{x}";
  EXPECT_EQ(tok->decode(tok->encode(rare, false, false)), rare);
  EXPECT_EQ(tok->token_to_piece(tok->find_token("<0x0A>")), "\n");
  EXPECT_THROW(tok->token_to_piece(512), InvalidArgument);
}

TEST(Tokenizer, FromFileChoosesTheLoaderByExtension) {
  HERD_REQUIRE_SHARED(gguf_path, "models/stories260K.gguf");
  EXPECT_EQ(Tokenizer::from_file(gguf_path.string())->n_vocab(), 512);
  HERD_REQUIRE_SHARED(json_path, "models/tokenizers/smollm2-135m-instruct.tokenizer.json");
  EXPECT_EQ(Tokenizer::from_file(json_path.string())->n_vocab(), 49152);
}

TEST(TokenizerGguf, MissingModelKeyIsAFormatError) {
  gguf::Metadata md;
  EXPECT_THROW(Tokenizer::from_gguf(md), FormatError);
  md.set("tokenizer.ggml.model", gguf::Value{gguf::ValueType::kString, std::string("bert")});
  EXPECT_THROW(Tokenizer::from_gguf(md), FormatError);
}

TEST(TokenizerGguf, BertWordPieceIsRejectedWithAMessage) {
  HERD_REQUIRE_SHARED(path, "models/llama.cpp-vocab/ggml-vocab-bert-bge.gguf");
  const auto file = gguf::File::open(path.string());
  try {
    Tokenizer::from_gguf(file.metadata());
    FAIL() << "bert vocabulary accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("bert"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace herd::model
