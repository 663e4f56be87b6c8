// Test doubles for the generation loop and the scheduler: a byte tokenizer and a scripted
// multi-sequence pipeline.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/batch.h"
#include "engine/pipeline.h"
#include "model/tokenizer.h"
#include "util/error.h"

namespace herd::engine {

inline constexpr std::int32_t kBos = 256;
inline constexpr std::int32_t kEos = 257;
inline constexpr std::int32_t kVocab = 260;

// One token per byte (ids 0..255), plus <s> and </s>.
class ByteTokenizer : public model::Tokenizer {
 public:
  std::vector<std::int32_t> encode(std::string_view text, bool add_special,
                                   bool parse_special) const override {
    std::vector<std::int32_t> ids;
    if (add_special) ids.push_back(kBos);
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (parse_special && text.substr(i, 3) == "<s>") {
        ids.push_back(kBos);
        i += 2;
      } else {
        ids.push_back(static_cast<unsigned char>(text[i]));
      }
    }
    return ids;
  }
  std::string token_to_piece(std::int32_t id) const override {
    return id < 256 ? std::string(1, static_cast<char>(id))
                    : texts_[static_cast<std::size_t>(id - 256)];
  }
  std::string decode(std::span<const std::int32_t> ids) const override {
    std::string s;
    for (std::int32_t id : ids) s += token_to_piece(id);
    return s;
  }
  std::int32_t n_vocab() const override { return kVocab; }
  std::int32_t bos() const override { return kBos; }
  std::int32_t eos() const override { return kEos; }
  bool is_end_of_generation(std::int32_t id) const override { return id == kEos; }
  bool adds_bos() const override { return true; }
  const std::string& token_text(std::int32_t id) const override { return texts_[0]; }
  std::int32_t find_token(std::string_view text) const override { return -1; }

 private:
  std::vector<std::string> texts_ = {"<s>", "</s>", "", ""};
};

// A deterministic "model" of n_seqs sequences: the next token of a sequence is whatever `next`
// says for its cached tokens. It checks that positions arrive in order, as a real KV cache
// would. With depth > 1 it keeps batches in flight like a pipeline of that many stages.
class FakePipeline : public Pipeline {
 public:
  using Script = std::function<std::int32_t(const std::vector<std::int32_t>& cache)>;
  FakePipeline(std::int32_t n_ctx, Script next, int n_seqs = 1, int depth = 1)
      : caches(static_cast<std::size_t>(n_seqs)),
        cache(caches[0]),
        truncates(truncates_by_seq[0]),
        n_ctx_(n_ctx),
        depth_(depth),
        next_(std::move(next)) {}

  void run(const Batch& batch, std::vector<float>& logits) override {
    if (fail_next) fail("node lost");
    check_runs(batch.runs, batch.tokens.size(), n_seqs());
    batches.push_back(batch);
    if (on_run) on_run(batch);
    logits.clear();
    std::size_t at = 0;
    for (const BatchRun& r : batch.runs) {
      auto& c = caches[r.seq];
      if (r.pos0 != static_cast<std::int32_t>(c.size()))
        fail("position {} of sequence {} out of order", r.pos0, r.seq);
      for (int i = 0; i < r.n_tokens; ++i) {
        c.push_back(batch.tokens[at + i]);
        if (static_cast<std::int32_t>(c.size()) > n_ctx_) fail("context full");
        if (batch.all_logits || (r.logits && i + 1 == r.n_tokens)) append_row(c, logits);
      }
      if (r.seq == 0) forwards.emplace_back(r.pos0, r.n_tokens);
      at += static_cast<std::size_t>(r.n_tokens);
    }
  }
  int max_in_flight() const override { return depth_; }
  void forget(std::int32_t seq, std::int32_t n_keep) override {
    truncates_by_seq[seq].push_back(n_keep);
    auto& c = caches.at(static_cast<std::size_t>(seq));
    if (static_cast<std::size_t>(n_keep) < c.size()) c.resize(static_cast<std::size_t>(n_keep));
  }
  void copy_prefix(std::int32_t src, std::int32_t dst, std::int32_t n) override {
    copies.push_back({src, dst, n});
    caches.at(dst).assign(caches.at(src).begin(), caches.at(src).begin() + n);
  }
  std::int32_t n_ctx() const override { return n_ctx_; }
  std::int32_t n_vocab() const override { return kVocab; }
  std::int32_t n_seqs() const override { return static_cast<std::int32_t>(caches.size()); }

  void set_script(Script next) { next_ = std::move(next); }

  std::vector<std::vector<std::int32_t>> caches;
  std::vector<std::int32_t>& cache;  // sequence 0
  std::vector<std::pair<std::int32_t, std::int32_t>> forwards;  // sequence 0: (pos0, n tokens)
  std::map<std::int32_t, std::vector<std::int32_t>> truncates_by_seq;
  std::vector<std::int32_t>& truncates;  // sequence 0
  struct Copy {
    std::int32_t src, dst, n;
  };
  std::vector<Copy> copies;
  std::vector<Batch> batches;
  std::function<void(const Batch&)> on_run;  // e.g. advances a fake clock
  bool fail_next = false;

 private:
  void append_row(const std::vector<std::int32_t>& c, std::vector<float>& logits) const {
    const std::size_t at = logits.size();
    logits.resize(at + kVocab, 0.0f);
    logits[at + static_cast<std::size_t>(next_(c))] = 10.0f;
  }

  std::int32_t n_ctx_;
  int depth_;
  Script next_;
};

// After `prompt_len` tokens, says `reply` byte by byte and then </s> (or keeps repeating 'z').
inline FakePipeline::Script reply(std::size_t prompt_len, std::string text, bool end = true) {
  return [=](const std::vector<std::int32_t>& cache) -> std::int32_t {
    std::size_t i = cache.size() - prompt_len;
    if (i < text.size()) return static_cast<unsigned char>(text[i]);
    return end ? kEos : 'z';
  };
}

}  // namespace herd::engine
