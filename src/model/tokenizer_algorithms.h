// The two encoding algorithms over a Vocab, and their inverse for one token. Internal to
// model/: callers use model::Tokenizer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/vocab.h"

namespace herd::model {

// SentencePiece BPE as llama.cpp's llm_tokenizer_spm: start from UTF-8 characters, repeatedly
// merge the adjacent pair whose concatenation is the highest-scoring token (leftmost on ties),
// then spell each piece that is not a token with <0xXX> byte tokens. `text` has its spaces
// already replaced by ▁.
void spm_encode(const Vocab& vocab, std::string_view text, std::vector<std::int32_t>& out);

// Byte-level BPE of one pre-tokenized word (already mapped to the byte-level alphabet): merge
// the adjacent pair of lowest merge rank (leftmost on ties) until none applies.
void bpe_encode_word(const Vocab& vocab, std::string_view word, std::vector<std::int32_t>& out);

// The bytes token `id` stands for; control tokens give their text when render_control is set.
std::string spm_piece(const Vocab& vocab, std::int32_t id, bool render_control);
std::string bpe_piece(const Vocab& vocab, std::int32_t id, bool render_control);

}  // namespace herd::model
