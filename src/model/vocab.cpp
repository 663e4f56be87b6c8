// Vocabulary loading from GGUF metadata; the key names and defaults follow llama.cpp's
// llama-vocab.cpp (llama_vocab::impl::load).
#include "model/vocab.h"

#include <algorithm>

#include "gguf/reader.h"
#include "model/pretokenizer.h"
#include "util/error.h"

namespace herd::model {
namespace {

// Token texts that end a turn in the chat formats we know (llama.cpp marks the same ones EOG).
constexpr const char* kEndOfTurnTexts[] = {
    "<|eot_id|>",      "<|im_end|>",
    "<|end|>",         "<end_of_turn>",
    "<|endoftext|>",   "<EOT>",
    "<|end_of_text|>", "<end_of_utterance>",
    "<|eom_id|>",      "<｜end▁of▁sentence｜>",
    "<|return|>",      "<|call|>",
};

std::int32_t id_or_none(const gguf::Metadata& md, std::string_view key, std::int32_t n_vocab,
                        std::int32_t fallback) {
  const auto v = md.get_int(key);
  if (!v) return fallback;
  // Files use 0xFFFFFFFF (and sometimes other out-of-range values) for "none".
  if (*v < 0 || *v >= n_vocab) return -1;
  return static_cast<std::int32_t>(*v);
}

}  // namespace

void finish_vocab(Vocab& vocab, const std::vector<std::pair<std::string, std::string>>& merges) {
  const std::int32_t n = vocab.size();
  if (n == 0) fail_format("tokenizer vocabulary is empty; the model file has no tokens");
  if (vocab.scores.empty()) vocab.scores.assign(n, 0.0f);
  if (vocab.types.empty()) vocab.types.assign(n, TokenType::kNormal);
  if (static_cast<std::int32_t>(vocab.scores.size()) != n ||
      static_cast<std::int32_t>(vocab.types.size()) != n) {
    fail_format("tokenizer has {} tokens but {} scores and {} token types; the file is corrupt", n,
                vocab.scores.size(), vocab.types.size());
  }
  vocab.index.clear();
  vocab.index.reserve(n);
  for (std::int32_t id = 0; id < n; ++id) {
    // The first id wins for a duplicated text, as in llama.cpp.
    vocab.index.emplace(vocab.tokens[id], id);
  }
  vocab.merge_ranks.clear();
  vocab.merge_ranks.reserve(merges.size());
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const std::int32_t left = vocab.find(merges[rank].first);
    const std::int32_t right = vocab.find(merges[rank].second);
    if (left < 0 || right < 0) continue;
    vocab.merge_ranks.emplace(Vocab::merge_key(left, right), static_cast<std::int32_t>(rank));
  }
  finish_special_tokens(vocab);
}

void finish_special_tokens(Vocab& vocab) {
  const std::int32_t n = vocab.size();
  for (std::int32_t* id :
       {&vocab.bos, &vocab.eos, &vocab.eot, &vocab.eom, &vocab.unknown, &vocab.padding}) {
    if (*id >= n) *id = -1;
  }
  if (vocab.eot < 0) {
    for (const char* text : {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<EOT>"}) {
      const std::int32_t id = vocab.find(text);
      if (id >= 0) {
        vocab.eot = id;
        break;
      }
    }
  }
  std::vector<std::int32_t>& eog = vocab.end_of_generation;
  eog.clear();
  for (std::int32_t id : {vocab.eos, vocab.eot, vocab.eom}) {
    if (id >= 0) eog.push_back(id);
  }
  for (const char* text : kEndOfTurnTexts) {
    const std::int32_t id = vocab.find(text);
    if (id >= 0 &&
        (vocab.types[id] == TokenType::kControl || vocab.types[id] == TokenType::kUserDefined)) {
      eog.push_back(id);
    }
  }
  std::sort(eog.begin(), eog.end());
  eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
}

Vocab load_gguf_vocab(const gguf::Metadata& md) {
  Vocab vocab;
  const std::string model = md.require_string("tokenizer.ggml.model");
  if (model == "llama") {
    vocab.kind = VocabKind::kSentencePiece;
  } else if (model == "gpt2") {
    vocab.kind = VocabKind::kBytePairs;
  } else {
    fail_format(
        "tokenizer.ggml.model '{}' is not supported (herd reads 'llama' = SentencePiece "
        "and 'gpt2' = byte-level BPE); use a model with one of those tokenizers",
        model);
  }
  auto tokens = md.get_string_array("tokenizer.ggml.tokens");
  if (!tokens)
    fail_format("metadata key 'tokenizer.ggml.tokens' is missing: the file has no vocabulary");
  vocab.tokens = std::move(*tokens);
  const auto n = vocab.size();
  if (auto scores = md.get_float_array("tokenizer.ggml.scores")) vocab.scores = std::move(*scores);
  if (auto types = md.get_int_array("tokenizer.ggml.token_type")) {
    vocab.types.reserve(types->size());
    for (std::int64_t t : *types) {
      if (t < 0 || t > static_cast<std::int64_t>(TokenType::kByte)) {
        fail_format("tokenizer.ggml.token_type holds {}, which is not a token type (0..6)", t);
      }
      vocab.types.push_back(static_cast<TokenType>(t));
    }
  }

  std::vector<std::pair<std::string, std::string>> merges;
  const std::string pre = md.get_string("tokenizer.ggml.pre").value_or("default");
  if (vocab.kind == VocabKind::kBytePairs) {
    auto raw = md.get_string_array("tokenizer.ggml.merges");
    if (!raw)
      fail_format(
          "metadata key 'tokenizer.ggml.merges' is missing: a gpt2 tokenizer needs its merges");
    merges.reserve(raw->size());
    for (const std::string& m : *raw) {
      // Search from 1: the left part may itself be a space.
      const std::size_t space = m.find(' ', 1);
      if (space == std::string::npos) {
        fail_format("tokenizer.ggml.merges entry '{}' is not of the form 'left right'", m);
      }
      merges.emplace_back(m.substr(0, space), m.substr(space + 1));
    }
    vocab.pre_patterns = PreTokenizer::patterns_for(pre);
    vocab.ignore_merges = PreTokenizer::ignores_merges(pre);
  }

  const bool spm = vocab.kind == VocabKind::kSentencePiece;
  // Defaults when the keys are absent, as llama.cpp: SPM <unk>=0 <s>=1 </s>=2; BPE 11 (GPT-NeoX).
  vocab.bos = id_or_none(md, "tokenizer.ggml.bos_token_id", n, spm ? 1 : 11);
  vocab.eos = id_or_none(md, "tokenizer.ggml.eos_token_id", n, spm ? 2 : 11);
  vocab.unknown = id_or_none(md, "tokenizer.ggml.unknown_token_id", n, spm ? 0 : -1);
  vocab.eot = id_or_none(md, "tokenizer.ggml.eot_token_id", n, -1);
  vocab.eom = id_or_none(md, "tokenizer.ggml.eom_token_id", n, -1);
  vocab.padding = id_or_none(md, "tokenizer.ggml.padding_token_id", n, -1);
  vocab.add_bos = md.get_bool("tokenizer.ggml.add_bos_token").value_or(spm || vocab.ignore_merges);
  vocab.add_eos = md.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
  vocab.add_space_prefix = md.get_bool("tokenizer.ggml.add_space_prefix").value_or(spm);
  finish_vocab(vocab, merges);
  return vocab;
}

}  // namespace herd::model
