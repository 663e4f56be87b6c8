// Causal multi-head attention with grouped KV heads over an f16 KV cache (llama.cpp's default
// cache type), and the f32 -> f16 row conversion that fills that cache.
//
// One work item is (token, kv head, a few query heads of its group, a range of positions): each
// K and V row is read once for all query heads of the item, so a GQA group costs one pass over
// its K/V instead of one pass per query head. When there are too few items to keep every thread
// busy (decode with few KV heads), the positions are split into chunks whose partial softmax
// results are merged afterwards (flash-decoding). Scalar, AVX2 and AVX-512 loops, chosen at run
// time (util/cpu_features.h; HERD_ISA forces a lower one).
#pragma once

#include <cstddef>
#include <cstdint>

#include "util/thread_pool.h"

namespace herd::kernels {

// Token t sits at position pos0 + t and attends to positions [0, pos0 + t], whose K/V rows are
// already in the cache (rows of the batch's own tokens included).
struct AttentionArgs {
  const float* q = nullptr;  // [n_tokens, q_stride]; head h at q + t*q_stride + h*head_dim_k
  std::int64_t q_stride = 0;
  // f16 (IEEE half bits) cache: kv head g of position p at k + g*k_head_stride + p*k_stride.
  // Head-major ([n_head_kv, n_ctx, head_dim_k]: k_stride = head_dim_k) streams each head's rows
  // from memory sequentially; position-major ([n_ctx, n_head_kv * head_dim_k]) also works.
  const std::uint16_t* k = nullptr;
  std::int64_t k_stride = 0;
  std::int64_t k_head_stride = 0;
  // kKeyBlock: K of each head is stored in blocks of kKeyBlock positions, dimension-major inside
  // a block (see key_offset), so that scores come out 16 positions per vector with no horizontal
  // sums; k_stride is then unused. 1: rows as above.
  int k_block = 1;
  const std::uint16_t* v = nullptr;  // likewise, head_dim_v values per head and position
  std::int64_t v_stride = 0;
  std::int64_t v_head_stride = 0;
  float* out = nullptr;  // [n_tokens, out_stride]; head h at out + t*out_stride + h*head_dim_v
  std::int64_t out_stride = 0;
  int n_tokens = 0;
  int pos0 = 0;
  int n_head = 0;
  int n_head_kv =
      0;  // n_head must be a multiple; query head h reads kv head h / (n_head/n_head_kv)
  int head_dim_k = 0;
  int head_dim_v = 0;
  float scale = 1.0f;        // applied to q.k before the softmax
  float* scratch = nullptr;  // attention_scratch_floats(*this, pool.size()) floats
};

// Positions per K block of the blocked layout (AttentionArgs::k_block).
inline constexpr int kKeyBlock = 16;

// Offset of element j of kv head g at position p in the K cache, for either layout.
inline std::int64_t key_offset(const AttentionArgs& a, int g, std::int64_t p, int j) {
  if (a.k_block == 1) return g * a.k_head_stride + p * a.k_stride + j;
  return g * a.k_head_stride + (p / kKeyBlock) * kKeyBlock * a.head_dim_k +
         static_cast<std::int64_t>(j) * kKeyBlock + p % kKeyBlock;
}

// Scratch the call needs. Depends only on the head counts, head sizes and thread count (not on
// the context length or batch size), so a workspace sized once never grows.
std::size_t attention_scratch_floats(const AttentionArgs& args, int n_threads);

void attention(const AttentionArgs& args, ThreadPool& pool);

// y[i] = x[i] rounded to the nearest f16 (ties to even), for cache rows.
void f32_to_f16_row(const float* x, std::uint16_t* y, std::int64_t n);
// The same into y[i * stride] (a key of the blocked layout: stride kKeyBlock).
void f32_to_f16_strided(const float* x, std::uint16_t* y, std::int64_t n, std::int64_t stride);

}  // namespace herd::kernels
