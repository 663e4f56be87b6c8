// Byte-level BPE of one word, following llama.cpp's llm_tokenizer_bpe_session and Hugging Face
// tokenizers' BPE model (models/bpe/word.rs): lowest merge rank first, leftmost on ties.
#include <charconv>
#include <queue>

#include "model/tokenizer_algorithms.h"
#include "model/unicode.h"

namespace herd::model {
namespace {

struct Symbol {
  int prev;
  int next;
  std::size_t offset;  // into the word
  std::size_t n;       // bytes; 0 once merged into its left neighbour
  std::int32_t id;     // token of this text, -1 when it is not one
};

struct Bigram {
  int left;
  int right;
  std::int32_t rank;
  std::int32_t left_id;
  std::int32_t right_id;
};

struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

void bpe_encode_word(const Vocab& vocab, std::string_view word, std::vector<std::int32_t>& out) {
  if (word.empty()) return;
  if (vocab.ignore_merges) {
    const std::int32_t whole = vocab.find(word);
    if (whole >= 0) {
      out.push_back(whole);
      return;
    }
  }
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (std::size_t offset = 0; offset < word.size();) {
    const std::size_t n = std::min(utf8_sequence_length(word[offset]), word.size() - offset);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, offset + n == word.size() ? -1 : index + 1, offset, n,
                       vocab.find(word.substr(offset, n))});
    offset += n;
  }
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[left];
    const Symbol& r = symbols[right];
    if (l.id < 0 || r.id < 0) return;
    const std::int32_t rank = vocab.merge_rank(l.id, r.id);
    if (rank >= 0) queue.push({left, right, rank, l.id, r.id});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    // Stale entry: one side has changed since the pair was queued.
    if (left.n == 0 || right.n == 0 || left.next != b.right || left.id != b.left_id ||
        right.id != b.right_id) {
      continue;
    }
    left.n += right.n;
    left.id = vocab.find(word.substr(left.offset, left.n));
    right.n = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }
  for (int i = 0; i != -1; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    // Not a token (only when the vocabulary lacks some byte): emit what single bytes exist.
    for (std::size_t k = 0; k < s.n; ++k) {
      const std::int32_t id = vocab.find(word.substr(s.offset + k, 1));
      if (id >= 0) out.push_back(id);
    }
  }
}

std::string bpe_piece(const Vocab& vocab, std::int32_t id, bool render_control) {
  const std::string& text = vocab.tokens[id];
  switch (vocab.types[id]) {
    case TokenType::kNormal:
      return byte_level_decode(text);
    case TokenType::kUserDefined:
      return text;
    case TokenType::kByte: {
      unsigned value = 0;
      if (text.size() == 6 &&
          std::from_chars(text.data() + 3, text.data() + 5, value, 16).ec == std::errc()) {
        return std::string(1, static_cast<char>(value));
      }
      return text;
    }
    case TokenType::kControl:
    case TokenType::kUnknown:
      return render_control ? text : std::string();
    default:
      return {};
  }
}

}  // namespace herd::model
