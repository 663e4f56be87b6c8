#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>

#include "kernels/attention_isa.h"
#include "kernels/decode_shaped.h"
#include "kernels/attention_neon.h"
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

// One tile's step of the online softmax for query rows [0, n_q) of the narrow loops (row r: token
// visible0 + r / heads positions into the tile): as AttentionLoops::softmax_wide, but in base e,
// with one running sum l[r] per row, and through the given max and exp_sum loops.
void softmax_rows(float (*max_fn)(const float*, int), float (*exp_sum_fn)(float*, int, float),
                  float* scores, int s_stride, int n_q, int n, int visible0, int heads, float* m,
                  float* l, float* acc, int acc_stride, int dv) {
  for (int r = 0; r < n_q; ++r) {
    float* s = scores + static_cast<std::size_t>(r) * s_stride;
    const int visible = std::clamp(visible0 + r / heads, 0, n);
    std::fill(s + visible, s + n, 0.0f);  // masked positions get weight 0 in accumulate
    if (visible == 0) continue;
    const float m_new = std::max(m[r], max_fn(s, visible));
    if (m_new > m[r] && l[r] > 0.0f) {
      // A larger maximum: rescale what was summed against the old one.
      const float c = std::exp(m[r] - m_new);
      l[r] *= c;
      float* row = acc + static_cast<std::size_t>(r) * acc_stride;
      for (int j = 0; j < dv; ++j) row[j] *= c;
    }
    m[r] = m_new;
    l[r] += exp_sum_fn(s, visible, m_new);
  }
}

void softmax_wide_scalar(float* scores, int s_stride, int n_q, int n, int visible0, int heads,
                         float* m, float* l, float* acc, int acc_stride, int dv) {
  for (int r = 0; r < n_q; ++r) {
    float* s = scores + static_cast<std::size_t>(r) * s_stride;
    float& sum = l[r * kAttentionSumLanes];  // the other lanes stay 0
    const int visible = std::clamp(visible0 + r / heads, 0, n);
    std::fill(s + visible, s + n, 0.0f);
    if (visible == 0) continue;
    const float m_new = std::max(m[r], max_scalar(s, visible));
    if (m_new > m[r] && sum > 0.0f) {
      const float c = std::exp2(m[r] - m_new);
      sum *= c;
      float* row = acc + static_cast<std::size_t>(r) * acc_stride;
      for (int j = 0; j < dv; ++j) row[j] *= c;
    }
    m[r] = m_new;
    for (int i = 0; i < visible; ++i) sum += (s[i] = std::exp2(s[i] - m_new));
  }
}

void to_f32_scalar(const std::uint16_t* x, float* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = tensor::fp16_to_fp32(x[i]);
}

void scores_wide_scalar(const float* q, int n_q, int d, const float* kf, int nb, int visible0,
                        int heads, float scale, float* s, int s_stride) {
  for (int r = 0; r < n_q; ++r) {
    for (int i = 0; i < nb * kKeyBlock; ++i) {
      const float* first =
          kf + static_cast<std::int64_t>(i / kKeyBlock) * kKeyBlock * d + i % kKeyBlock;
      float sum = 0.0f;
      for (int j = 0; j < d; ++j) sum += q[r * d + j] * first[j * kKeyBlock];
      s[r * s_stride + i] = sum * scale;
    }
  }
}

void accumulate_wide_scalar(const float* w, int w_stride, int n_q, const float* vf, int v_stride,
                            int n, int visible0, int heads, int d, float* acc, int acc_stride) {
  for (int r = 0; r < n_q; ++r) {
    for (int i = 0; i < n; ++i) {
      const float x = w[r * w_stride + i];
      for (int j = 0; j < d; ++j) acc[r * acc_stride + j] += x * vf[i * v_stride + j];
    }
  }
}

constexpr AttentionLoops kScalarLoops{
    &scores_scalar,       &accumulate_scalar,     &scores_blocked_scalar, &max_scalar,
    &exp_sum_scalar,      &to_f16_scalar,         &to_f32_scalar,         &scores_wide_scalar,
    &softmax_wide_scalar, &accumulate_wide_scalar};

// Positions whose scores are held at once per query head (the softmax runs online across tiles).
constexpr int kTile = 256;
// Fewest positions worth a chunk of their own: below this the merge costs more than it saves.
constexpr int kMinChunk = 256;
// Items per thread wanted before chunking positions: a few, so that one thread descheduled by a
// busy machine leaves work the others can take.
constexpr int kItemsPerThread = 4;
// Wide plan (prefill, when the ISA has the wide loops): query rows per item, and positions whose
// K/V are widened to f32 at once. Up to 128 rows (4 heads x 32 tokens of a Llama GQA group) share
// each conversion, so widening costs ~2% of the FMAs; tiles of 128 positions (32 KiB of f32 K and
// of V at head size 64) halve the softmax's per-tile work per row against 64 and measured faster.
constexpr int kWideRows = 128;
constexpr int kWideTile = 128;
// Running sums per row of the wide loops (AttentionLoops::softmax_wide).
constexpr int kSumLanes = kAttentionSumLanes;
// The wide loops' scores carry this factor so that their softmax weights are powers of 2.
constexpr float kLog2e = 1.44269504088896341f;

struct Plan {
  int group = 0;     // query heads per kv head
  int heads = 0;     // query heads per item (divides group)
  int tokens = 1;    // consecutive tokens per item (prefill): heads * tokens <= kAttentionMaxHeads
  int n_blocks = 0;  // ceil(n_tokens / tokens)
  int n_sub = 0;     // group / heads
  int n_chunks = 0;  // position ranges per (token, kv head, sub-group)
  std::int64_t n_items = 0;
  bool wide = false;  // items of up to kWideRows rows through attend_wide
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

int round_up16(int n) {
  return (n + 15) / 16 * 16;
}

// Floats of attend_wide's slot: widened K and V tiles, then as slot_floats for kWideRows rows
// (accumulator rows padded to whole vectors), and room to align the start to 64 bytes.
std::size_t wide_slot_floats(int head_dim_k, int head_dim_v) {
  const std::size_t dvp = static_cast<std::size_t>(round_up16(head_dim_v));
  return kWideTile * (head_dim_k + dvp) +
         kWideRows * (kWideTile + dvp + kSumLanes + 1 + head_dim_k) + 16;
}

// Floats each thread gets, whichever plan runs (so the scratch size does not depend on the ISA).
std::size_t thread_slot_floats(int head_dim_k, int head_dim_v) {
  return std::max(slot_floats(kAttentionMaxHeads, head_dim_k, head_dim_v),
                  wide_slot_floats(head_dim_k, head_dim_v));
}

// Floats of one chunk's partial result: running max, sum and the unnormalised output per head.
std::size_t partial_floats(int heads, int head_dim_v) {
  return static_cast<std::size_t>(heads) * (head_dim_v + 2);
}

Plan make_plan(const AttentionArgs& a, int n_threads, bool wide_loops) {
  Plan p;
  p.group = a.n_head / a.n_head_kv;
  p.heads = heads_per_item(p.group);
  p.n_sub = p.group / p.heads;
  const std::int64_t wanted = static_cast<std::int64_t>(kItemsPerThread) * n_threads;
  if (wide_loops && a.k_block == kKeyBlock) {
    auto items = [&](int tokens) {
      return static_cast<std::int64_t>((a.n_tokens + tokens - 1) / tokens) * a.n_head_kv * p.n_sub;
    };
    int tokens = std::max(1, std::min(kWideRows / p.heads, a.n_tokens));
    while (tokens > 1 && items(tokens) < wanted) tokens /= 2;
    // With few rows (decode, short batches) the narrow loops convert in registers instead.
    if (p.heads * tokens > kAttentionMaxHeads) {
      p.wide = true;
      p.tokens = tokens;
      p.n_blocks = (a.n_tokens + tokens - 1) / tokens;
      p.n_chunks = 1;
      p.n_items = items(tokens);
      return p;
    }
  }
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
    softmax_rows(L.max, L.exp_sum, scores, kTile, n_q, n, a.pos0 + t0 + 1 - p0, heads, m, l, acc,
                 dv, dv);
    L.accumulate(scores, kTile, n_q, v + p0 * a.v_stride, a.v_stride, n, dv, acc);
  }
}

void write_out(const AttentionArgs& a, int dv, int t, int h, const float* acc, float l) {
  float* out = a.out + t * a.out_stride + static_cast<std::int64_t>(h) * dv;
  const float inv = 1.0f / l;
  for (int j = 0; j < dv; ++j) out[j] = acc[j] * inv;
}

// attend_range for the wide plan (blocked K, one chunk): the K/V of each tile of kWideTile
// positions is widened to f32 once for all rows, then the wide loops run on f32. Writes out.
void attend_wide(const AttentionArgs& a, const AttentionLoops& L, int heads, int t0, int n_tok,
                 int g, int h0, float* slot) {
  const int dk = a.head_dim_k;
  const int dv = a.head_dim_v;
  const int dvp = round_up16(dv);
  const int n_q = heads * n_tok;
  // Whole vectors of the f32 tiles start on cache lines.
  float* kf =
      reinterpret_cast<float*>((reinterpret_cast<std::uintptr_t>(slot) + 63) & ~std::uintptr_t{63});
  float* vf = kf + static_cast<std::size_t>(kWideTile) * dk;        // [kWideTile, dvp]
  float* scores = vf + static_cast<std::size_t>(kWideTile) * dvp;   // [n_q, kWideTile]
  float* acc = scores + static_cast<std::size_t>(n_q) * kWideTile;  // [n_q, dvp]
  float* l = acc + static_cast<std::size_t>(n_q) * dvp;             // [n_q, kSumLanes]
  float* m = l + static_cast<std::size_t>(n_q) * kSumLanes;
  float* q = m + n_q;  // [n_q, dk]
  std::fill(acc, acc + static_cast<std::size_t>(n_q) * dvp, 0.0f);
  std::fill(l, l + static_cast<std::size_t>(n_q) * kSumLanes, 0.0f);
  std::fill(m, m + n_q, -std::numeric_limits<float>::infinity());
  for (int j = 0; j < n_tok; ++j) {
    const float* src = a.q + (t0 + j) * a.q_stride + static_cast<std::int64_t>(h0) * dk;
    std::copy(src, src + static_cast<std::size_t>(heads) * dk, q + j * heads * dk);
  }
  const std::uint16_t* k = a.k + g * a.k_head_stride;
  const std::uint16_t* v = a.v + g * a.v_head_stride;
  const int end = a.pos0 + t0 + n_tok;
  for (int p0 = 0; p0 < end; p0 += kWideTile) {
    const int n = std::min(kWideTile, end - p0);
    const int nb = (n + kKeyBlock - 1) / kKeyBlock;
    // Tiles start on block boundaries, so the tile's blocks are contiguous from p0 * dk.
    L.to_f32(k + static_cast<std::int64_t>(p0) * dk, kf,
             static_cast<std::int64_t>(nb) * kKeyBlock * dk);
    if (a.v_stride == dv && dv == dvp) {  // rows back to back, as vf wants them: one call
      L.to_f32(v + p0 * a.v_stride, vf, static_cast<std::int64_t>(n) * dvp);
    } else {
      for (int i = 0; i < n; ++i) {
        L.to_f32(v + (p0 + i) * a.v_stride, vf + static_cast<std::size_t>(i) * dvp, dv);
      }
    }
    const int visible0 = a.pos0 + t0 + 1 - p0;  // of row 0; row r sees visible0 + r / heads
    L.scores_wide(q, n_q, dk, kf, nb, visible0, heads, a.scale * kLog2e, scores, kWideTile);
    L.softmax_wide(scores, kWideTile, n_q, n, visible0, heads, m, l, acc, dvp, dv);
    L.accumulate_wide(scores, kWideTile, n_q, vf, dvp, n, visible0, heads, dv, acc, dvp);
  }
  for (int r = 0; r < n_q; ++r) {
    const float* lanes = l + static_cast<std::size_t>(r) * kSumLanes;
    const float sum = std::accumulate(lanes, lanes + kSumLanes, 0.0f);
    write_out(a, dv, t0 + r / heads, h0 + r % heads, acc + static_cast<std::size_t>(r) * dvp, sum);
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
#elif defined(__aarch64__)
  if (isa == Isa::kNeon) return neon::attention_loops();
#endif
  return kScalarLoops;
}

std::size_t attention_scratch_floats(const AttentionArgs& a, int n_threads) {
  HERD_CHECK(a.n_head_kv > 0 && a.n_head % a.n_head_kv == 0 && n_threads > 0);
  // Chunking happens only while base items < kItemsPerThread * n_threads, so at most twice that
  // many items hold partials.
  const std::size_t max_partials = static_cast<std::size_t>(2 * kItemsPerThread) * n_threads;
  const int heads = heads_per_item(a.n_head / a.n_head_kv);
  return static_cast<std::size_t>(n_threads) * thread_slot_floats(a.head_dim_k, a.head_dim_v) +
         max_partials * partial_floats(heads, a.head_dim_v);
}

void attention(const AttentionArgs& a, ThreadPool& pool) {
  HERD_CHECK(a.n_head_kv > 0 && a.n_head % a.n_head_kv == 0);
  HERD_CHECK(a.k_block == 1 || a.k_block == kKeyBlock);
  HERD_CHECK(a.n_tokens >= 0 && a.pos0 >= 0 && a.scratch);
  if (a.n_tokens == 0) return;
  if (a.n_tokens > 1 && decode_shaped()) {
    // Token t sees positions [0, pos0 + t], as its own decode step did (decode_shaped.h).
    for (int t = 0; t < a.n_tokens; ++t) {
      AttentionArgs one = a;
      one.q = a.q + static_cast<std::int64_t>(t) * a.q_stride;
      one.out = a.out + static_cast<std::int64_t>(t) * a.out_stride;
      one.n_tokens = 1;
      one.pos0 = a.pos0 + t;
      attention(one, pool);
    }
    return;
  }
  const AttentionLoops& L = attention_loops(active_isa());
  const int n_threads = pool.size();
  const Plan p = make_plan(a, n_threads, L.scores_wide != nullptr);
  const int dv = a.head_dim_v;
  const std::size_t slot_size = thread_slot_floats(a.head_dim_k, dv);
  float* partials = a.scratch + static_cast<std::size_t>(n_threads) * slot_size;
  const std::size_t part_stride = partial_floats(p.heads, dv);
  HERD_CHECK(p.n_chunks == 1 ||
             static_cast<std::size_t>(p.n_items) <= 2u * kItemsPerThread * n_threads);
  pool.run([&](int thread, int n) {
    float* slot = a.scratch + static_cast<std::size_t>(thread) * slot_size;
    // Interleaved split: later tokens see more positions, so contiguous runs would be uneven.
    for (std::int64_t i = thread; i < p.n_items; i += n) {
      const Item it = item_at(a, p, i);
      if (p.wide) {
        attend_wide(a, L, p.heads, it.t, it.n_tok, it.g, it.h0, slot);
        continue;
      }
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
