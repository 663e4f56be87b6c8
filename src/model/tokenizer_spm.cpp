// SentencePiece encoding, following llama.cpp's llm_tokenizer_spm_session (itself modelled on
// sentencepiece's bpe_model.cc).
#include <charconv>
#include <queue>
#include <unordered_map>

#include "model/tokenizer_algorithms.h"
#include "model/unicode.h"

namespace herd::model {
namespace {

struct Symbol {
  int prev;
  int next;
  const char* text;
  std::size_t n;
};

struct Bigram {
  int left;
  int right;
  float score;
  std::size_t size;
};

struct BigramOrder {
  // Highest score first; on equal scores the leftmost pair.
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

std::int32_t byte_token(const Vocab& vocab, std::uint8_t byte) {
  static const char* kHex = "0123456789ABCDEF";
  const char name[7] = {'<', '0', 'x', kHex[byte >> 4], kHex[byte & 15], '>', 0};
  std::int32_t id = vocab.find(name);
  if (id < 0) id = vocab.find(std::string_view(reinterpret_cast<const char*>(&byte), 1));
  return id >= 0 ? id : vocab.unknown;
}

class SpmSession {
 public:
  SpmSession(const Vocab& vocab, std::vector<std::int32_t>& out) : vocab_(vocab), out_(out) {}

  void encode(std::string_view text) {
    for (std::size_t offset = 0; offset < text.size();) {
      const std::size_t n = std::min(utf8_sequence_length(text[offset]), text.size() - offset);
      const int index = static_cast<int>(symbols_.size());
      symbols_.push_back(
          {index - 1, offset + n == text.size() ? -1 : index + 1, text.data() + offset, n});
      offset += n;
    }
    for (int i = 1; i < static_cast<int>(symbols_.size()); ++i) try_add_bigram(i - 1, i);
    while (!queue_.empty()) {
      const Bigram b = queue_.top();
      queue_.pop();
      Symbol& left = symbols_[b.left];
      Symbol& right = symbols_[b.right];
      // Skip pairs whose symbols were merged into something else since they were queued.
      if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;
      left.n += right.n;
      right.n = 0;
      left.next = right.next;
      if (right.next >= 0) symbols_[right.next].prev = b.left;
      try_add_bigram(left.prev, b.left);
      try_add_bigram(b.left, left.next);
    }
    for (int i = 0; i != -1 && i < static_cast<int>(symbols_.size()); i = symbols_[i].next) {
      resegment(symbols_[i]);
    }
  }

 private:
  void try_add_bigram(int left, int right) {
    if (left < 0 || right < 0) return;
    const std::string_view text(symbols_[left].text, symbols_[left].n + symbols_[right].n);
    const std::int32_t id = vocab_.find(text);
    if (id < 0) return;
    queue_.push({left, right, vocab_.scores[id], text.size()});
    rev_merge_[std::string(text)] = {left, right};
  }

  // A piece that is not a token is split back along the merges that built it, down to bytes.
  void resegment(const Symbol& symbol) {
    const std::string_view text(symbol.text, symbol.n);
    const std::int32_t id = vocab_.find(text);
    if (id >= 0) {
      out_.push_back(id);
      return;
    }
    auto it = rev_merge_.find(std::string(text));
    if (it == rev_merge_.end()) {
      for (char c : text) out_.push_back(byte_token(vocab_, static_cast<std::uint8_t>(c)));
      return;
    }
    resegment(symbols_[it->second.first]);
    resegment(symbols_[it->second.second]);
  }

  const Vocab& vocab_;
  std::vector<std::int32_t>& out_;
  std::vector<Symbol> symbols_;
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue_;
  std::unordered_map<std::string, std::pair<int, int>> rev_merge_;
};

}  // namespace

void spm_encode(const Vocab& vocab, std::string_view text, std::vector<std::int32_t>& out) {
  if (text.empty()) return;
  SpmSession(vocab, out).encode(text);
}

std::string spm_piece(const Vocab& vocab, std::int32_t id, bool render_control) {
  const std::string& text = vocab.tokens[id];
  switch (vocab.types[id]) {
    case TokenType::kNormal: {
      std::string out;
      out.reserve(text.size());
      static constexpr std::string_view kSpace = "\xE2\x96\x81";  // ▁
      for (std::size_t i = 0; i < text.size();) {
        if (text.compare(i, kSpace.size(), kSpace) == 0) {
          out += ' ';
          i += kSpace.size();
        } else {
          out += text[i++];
        }
      }
      return out;
    }
    case TokenType::kByte:
      // "<0xXX>"
      {
        unsigned value = 0;
        if (text.size() == 6 &&
            std::from_chars(text.data() + 3, text.data() + 5, value, 16).ec == std::errc()) {
          return std::string(1, static_cast<char>(value));
        }
        return text;
      }
    case TokenType::kUnknown:
      return "\xE2\x96\x85";  // ▅, as llama.cpp renders <unk>
    case TokenType::kUserDefined:
      return text;
    case TokenType::kControl:
      return render_control ? text : std::string();
    default:
      return {};
  }
}

}  // namespace herd::model
