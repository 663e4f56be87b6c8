#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/attention_isa.h"
#include "tensor/fp16.h"
#include "util/error.h"

namespace herd::kernels {

namespace {

// Scalar reference loops.

void scores_scalar(const float* q, int n_q, int d, const std::uint16_t* k, std::int64_t k_stride,
                   int n, float scale, float* s, int s_stride) {
  for (int i = 0; i < n; ++i) {
    const std::uint16_t* row = k + i * k_stride;
    for (int h = 0; h < n_q; ++h) {
      const float* qh = q + static_cast<std::int64_t>(h) * d;
      float sum = 0.0f;
      for (int j = 0; j < d; ++j) sum += qh[j] * tensor::fp16_to_fp32(row[j]);
      s[h * s_stride + i] = sum * scale;
    }
  }
}

void scores_blocked_scalar(const float* q, int n_q, int d, const std::uint16_t* k, int p0, int n,
                           float scale, float* s, int s_stride) {
  for (int i = 0; i < n; ++i) {
    const int p = p0 + i;
    const std::uint16_t* first = k + (p / kKeyBlock) * kKeyBlock * d + p % kKeyBlock;
    for (int h = 0; h < n_q; ++h) {
      const float* qh = q + static_cast<std::int64_t>(h) * d;
      float sum = 0.0f;
      for (int j = 0; j < d; ++j) sum += qh[j] * tensor::fp16_to_fp32(first[j * kKeyBlock]);
      s[h * s_stride + i] = sum * scale;
    }
  }
}

void accumulate_scalar(const float* w, int w_stride, int n_q, const std::uint16_t* v,
                       std::int64_t v_stride, int n, int d, float* acc) {
  for (int i = 0; i < n; ++i) {
    const std::uint16_t* row = v + i * v_stride;
    for (int j = 0; j < d; ++j) {
      const float x = tensor::fp16_to_fp32(row[j]);
      for (int h = 0; h < n_q; ++h) acc[h * d + j] += w[h * w_stride + i] * x;
    }
  }
}

float max_scalar(const float* x, int n) {
  float m = -std::numeric_limits<float>::infinity();
  for (int i = 0; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

float exp_sum_scalar(float* x, int n, float max) {
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - max));
  return sum;
}

void to_f16_scalar(const float* x, std::uint16_t* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = tensor::fp32_to_fp16(x[i]);
}

constexpr AttentionLoops kScalarLoops{&scores_scalar, &accumulate_scalar, &scores_blocked_scalar,
                                      &max_scalar,    &exp_sum_scalar,    &to_f16_scalar};

// Positions whose scores are held at once per query head (the softmax runs online across tiles).
constexpr int kTile = 256;
// Fewest positions worth a chunk of their own: below this the merge costs more than it saves.
constexpr int kMinChunk = 256;
// Items per thread wanted before chunking positions: a few, so that one thread descheduled by a
// busy machine leaves work the others can take.
constexpr int kItemsPerThread = 4;

struct Plan {
  int group = 0;     // query heads per kv head
  int heads = 0;     // query heads per item (divides group)
  int tokens = 1;    // consecutive tokens per item (prefill): heads * tokens <= kAttentionMaxHeads
  int n_blocks = 0;  // ceil(n_tokens / tokens)
  int n_sub = 0;     // group / heads
  int n_chunks = 0;  // position ranges per (token, kv head, sub-group)
  std::int64_t n_items = 0;
};

int heads_per_item(int group) {
  int h = std::min(group, kAttentionMaxHeads);
  while (group % h != 0) --h;
  return h;
}

// Floats one thread needs for an item of n_q query rows: scores of a tile, accumulators, running
// max and sum, then the gathered queries.
std::size_t slot_floats(int n_q, int head_dim_k, int head_dim_v) {
  return static_cast<std::size_t>(n_q) * (kTile + head_dim_v + 2 + head_dim_k);
}

// Floats of one chunk's partial result: running max, sum and the unnormalised output per head.
std::size_t partial_floats(int heads, int head_dim_v) {
  return static_cast<std::size_t>(heads) * (head_dim_v + 2);
}

Plan make_plan(const AttentionArgs& a, int n_threads) {
  Plan p;
  p.group = a.n_head / a.n_head_kv;
  p.heads = heads_per_item(p.group);
  p.n_sub = p.group / p.heads;
  const std::int64_t wanted = static_cast<std::int64_t>(kItemsPerThread) * n_threads;
  // In a batch, each item takes several consecutive tokens so that every K/V row it reads serves
  // kAttentionMaxHeads query rows, as long as enough items remain to share out.
  p.tokens = std::max(1, std::min(kAttentionMaxHeads / p.heads, a.n_tokens));
  auto blocks = [&](int tokens) { return (a.n_tokens + tokens - 1) / tokens; };
  while (p.tokens > 1 &&
         static_cast<std::int64_t>(blocks(p.tokens)) * a.n_head_kv * p.n_sub < wanted) {
    p.tokens /= 2;
  }
  p.n_blocks = blocks(p.tokens);
  const std::int64_t base = static_cast<std::int64_t>(p.n_blocks) * a.n_head_kv * p.n_sub;
  p.n_chunks = 1;
  if (n_threads > 1 && base < wanted && p.tokens == 1) {
    // Every token sees at least pos0 + 1 positions, so no chunk is empty.
    const std::int64_t by_length = std::max(1, (a.pos0 + 1) / kMinChunk);
    p.n_chunks = static_cast<int>(std::min((wanted + base - 1) / base, by_length));
  }
  p.n_items = base * p.n_chunks;
  return p;
}

// Scores, online softmax and V accumulation for the item's query rows: heads [h0, h0 + heads) of
// tokens [t0, t0 + n_tok), row j * heads + h, over positions [begin, end) (end: what the last
// token sees; earlier tokens' rows are masked past their own position). Leaves the running max
// m, sum l and unnormalised output acc of each row in `slot`.
void attend_range(const AttentionArgs& a, const AttentionLoops& L, int heads, int t0, int n_tok,
                  int g, int h0, int begin, int end, float* slot) {
  const int dk = a.head_dim_k;
  const int dv = a.head_dim_v;
  const int n_q = heads * n_tok;
  float* scores = slot;
  float* acc = scores + static_cast<std::size_t>(n_q) * kTile;
  float* m = acc + static_cast<std::size_t>(n_q) * dv;
  float* l = m + n_q;
  float* q = l + n_q;  // [n_q, dk]
  std::fill(acc, acc + static_cast<std::size_t>(n_q) * dv, 0.0f);
  std::fill(m, m + n_q, -std::numeric_limits<float>::infinity());
  std::fill(l, l + n_q, 0.0f);
  for (int j = 0; j < n_tok; ++j) {
    const float* src = a.q + (t0 + j) * a.q_stride + static_cast<std::int64_t>(h0) * dk;
    std::copy(src, src + static_cast<std::size_t>(heads) * dk, q + j * heads * dk);
  }
  const std::uint16_t* k = a.k + g * a.k_head_stride;
  const std::uint16_t* v = a.v + g * a.v_head_stride;
  for (int p0 = begin; p0 < end; p0 += kTile) {
    const int n = std::min(kTile, end - p0);
    if (a.k_block == kKeyBlock) {
      L.scores_blocked(q, n_q, dk, k, p0, n, a.scale, scores, kTile);
    } else {
      L.scores(q, n_q, dk, k + p0 * a.k_stride, a.k_stride, n, a.scale, scores, kTile);
    }
    for (int r = 0; r < n_q; ++r) {
      float* s = scores + r * kTile;
      // Causal mask of the earlier tokens of the item: token t0 + j sees positions < limit.
      const int limit = a.pos0 + t0 + r / heads + 1;
      const int visible = std::clamp(limit - p0, 0, n);
      std::fill(s + visible, s + n, 0.0f);  // masked positions get weight 0 in accumulate
      if (visible == 0) continue;
      const float m_new = std::max(m[r], L.max(s, visible));
      if (m_new > m[r] && l[r] > 0.0f) {
        // A larger maximum: rescale what was summed against the old one.
        const float c = std::exp(m[r] - m_new);
        l[r] *= c;
        for (int j = 0; j < dv; ++j) acc[r * dv + j] *= c;
      }
      m[r] = m_new;
      l[r] += L.exp_sum(s, visible, m_new);
    }
    L.accumulate(scores, kTile, n_q, v + p0 * a.v_stride, a.v_stride, n, dv, acc);
  }
}

struct Item {
  int t, n_tok, g, h0, chunk;  // tokens [t, t + n_tok)
};

Item item_at(const AttentionArgs& a, const Plan& p, std::int64_t i) {
  Item it;
  it.chunk = static_cast<int>(i % p.n_chunks);
  i /= p.n_chunks;
  const int sub = static_cast<int>(i % p.n_sub);
  i /= p.n_sub;
  it.g = static_cast<int>(i % a.n_head_kv);
  it.t = static_cast<int>(i / a.n_head_kv) * p.tokens;
  it.n_tok = std::min(p.tokens, a.n_tokens - it.t);
  it.h0 = it.g * p.group + sub * p.heads;
  return it;
}

void write_out(const AttentionArgs& a, int dv, int t, int h, const float* acc, float l) {
  float* out = a.out + t * a.out_stride + static_cast<std::int64_t>(h) * dv;
  const float inv = 1.0f / l;
  for (int j = 0; j < dv; ++j) out[j] = acc[j] * inv;
}

// Combines the chunks' partial softmax results of each (token, kv head, sub-group) into out.
// Chunk 0's accumulators collect the others in place.
void merge_chunks(const AttentionArgs& a, const Plan& p, float* partials) {
  const int dv = a.head_dim_v;
  const std::size_t stride = partial_floats(p.heads, dv);
  for (std::int64_t i = 0; i < p.n_items; i += p.n_chunks) {
    const Item it = item_at(a, p, i);
    float* first = partials + i * stride;
    for (int h = 0; h < p.heads; ++h) {
      float m = -std::numeric_limits<float>::infinity();
      for (int c = 0; c < p.n_chunks; ++c) m = std::max(m, first[c * stride + h]);
      float l = 0.0f;
      float* out = first + 2 * p.heads + h * dv;
      for (int c = 0; c < p.n_chunks; ++c) {
        const float* part = first + c * stride;
        const float w = std::exp(part[h] - m);
        l += part[p.heads + h] * w;
        if (c == 0) {
          for (int j = 0; j < dv; ++j) out[j] *= w;
        } else {
          const float* src = part + 2 * p.heads + h * dv;
          for (int j = 0; j < dv; ++j) out[j] += src[j] * w;
        }
      }
      write_out(a, dv, it.t, it.h0 + h, out, l);
    }
  }
}

}  // namespace

const AttentionLoops& attention_loops(Isa isa) {
#if defined(__x86_64__) || defined(_M_X64)
  if (isa == Isa::kAvx512) return avx512::attention_loops();
  if (isa == Isa::kAvx2) return avx2::attention_loops();
#endif
  return kScalarLoops;
}

std::size_t attention_scratch_floats(const AttentionArgs& a, int n_threads) {
  HERD_CHECK(a.n_head_kv > 0 && a.n_head % a.n_head_kv == 0 && n_threads > 0);
  const int n_q = kAttentionMaxHeads;  // any plan's heads * tokens
  // Chunking happens only while base items < kItemsPerThread * n_threads, so at most twice that
  // many items hold partials.
  const std::size_t max_partials = static_cast<std::size_t>(2 * kItemsPerThread) * n_threads;
  const int heads = heads_per_item(a.n_head / a.n_head_kv);
  return static_cast<std::size_t>(n_threads) * slot_floats(n_q, a.head_dim_k, a.head_dim_v) +
         max_partials * partial_floats(heads, a.head_dim_v);
}

void attention(const AttentionArgs& a, ThreadPool& pool) {
  HERD_CHECK(a.n_head_kv > 0 && a.n_head % a.n_head_kv == 0);
  HERD_CHECK(a.k_block == 1 || a.k_block == kKeyBlock);
  HERD_CHECK(a.n_tokens >= 0 && a.pos0 >= 0 && a.scratch);
  if (a.n_tokens == 0) return;
  const AttentionLoops& L = attention_loops(active_isa());
  const int n_threads = pool.size();
  const Plan p = make_plan(a, n_threads);
  const int dv = a.head_dim_v;
  const std::size_t slot_size = slot_floats(kAttentionMaxHeads, a.head_dim_k, dv);
  float* partials = a.scratch + static_cast<std::size_t>(n_threads) * slot_size;
  const std::size_t part_stride = partial_floats(p.heads, dv);
  HERD_CHECK(p.n_chunks == 1 ||
             static_cast<std::size_t>(p.n_items) <= 2u * kItemsPerThread * n_threads);
  pool.run([&](int thread, int n) {
    float* slot = a.scratch + static_cast<std::size_t>(thread) * slot_size;
    // Interleaved split: later tokens see more positions, so contiguous runs would be uneven.
    for (std::int64_t i = thread; i < p.n_items; i += n) {
      const Item it = item_at(a, p, i);
      const int n_q = p.heads * it.n_tok;
      const float* acc = slot + static_cast<std::size_t>(n_q) * kTile;
      const int n_visible = a.pos0 + it.t + it.n_tok;
      const int begin =
          static_cast<int>(static_cast<std::int64_t>(n_visible) * it.chunk / p.n_chunks);
      const int end =
          static_cast<int>(static_cast<std::int64_t>(n_visible) * (it.chunk + 1) / p.n_chunks);
      attend_range(a, L, p.heads, it.t, it.n_tok, it.g, it.h0, begin, end, slot);
      const float* m = acc + static_cast<std::size_t>(n_q) * dv;
      const float* l = m + n_q;
      if (p.n_chunks == 1) {
        for (int r = 0; r < n_q; ++r) {
          write_out(a, dv, it.t + r / p.heads, it.h0 + r % p.heads, acc + r * dv, l[r]);
        }
      } else {
        float* part = partials + i * part_stride;
        std::copy(m, m + 2 * p.heads, part);  // m then l
        std::copy(acc, acc + static_cast<std::size_t>(p.heads) * dv, part + 2 * p.heads);
      }
    }
  });
  if (p.n_chunks > 1) merge_chunks(a, p, partials);
}

void f32_to_f16_row(const float* x, std::uint16_t* y, std::int64_t n) {
  attention_loops(active_isa()).to_f16(x, y, n);
}

void f32_to_f16_strided(const float* x, std::uint16_t* y, std::int64_t n, std::int64_t stride) {
  if (stride == 1) return f32_to_f16_row(x, y, n);
  constexpr std::int64_t kChunk = 256;
  std::uint16_t row[kChunk];
  for (std::int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const std::int64_t m = std::min(kChunk, n - i0);
    f32_to_f16_row(x + i0, row, m);
    for (std::int64_t i = 0; i < m; ++i) y[(i0 + i) * stride] = row[i];
  }
}

}  // namespace herd::kernels
