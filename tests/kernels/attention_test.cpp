// Grouped-query attention over an f16 cache against a plain double-precision reference, for every
// compiled instruction set, at GQA ratios 1..16, odd head sizes, K and V of different sizes
// (deepseek2), a V that is a prefix of K (deepseek2's absorbed latent), prefill batches after a
// cached prefix (including the wide prefill loops' items of many query rows), and decode at long
// context (positions split across threads).
#include "kernels/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "tensor/fp16.h"
#include "util/cpu_features.h"

namespace herd::kernels {
namespace {

std::vector<float> random_vector(std::size_t n, std::uint32_t seed, float sd = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<std::uint16_t> to_f16(const std::vector<float>& x) {
  std::vector<std::uint16_t> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = tensor::fp32_to_fp16(x[i]);
  return y;
}

// Every (token, head) on its own, in double, from the f16 values as stored.
std::vector<float> naive_attention(const AttentionArgs& a) {
  std::vector<float> out(static_cast<std::size_t>(a.n_tokens) * a.out_stride, 0.0f);
  const int group = a.n_head / a.n_head_kv;
  for (int t = 0; t < a.n_tokens; ++t) {
    for (int h = 0; h < a.n_head; ++h) {
      const int g = h / group;
      const int n = a.pos0 + t + 1;
      std::vector<double> s(n);
      double max = -1e300;
      for (int p = 0; p < n; ++p) {
        double d = 0;
        for (int i = 0; i < a.head_dim_k; ++i) {
          d += double(a.q[t * a.q_stride + h * a.head_dim_k + i]) *
               tensor::fp16_to_fp32(a.k[key_offset(a, g, p, i)]);
        }
        s[p] = d * a.scale;
        max = std::max(max, s[p]);
      }
      double sum = 0;
      for (auto& v : s) sum += (v = std::exp(v - max));
      for (int i = 0; i < a.head_dim_v; ++i) {
        double acc = 0;
        for (int p = 0; p < n; ++p) {
          acc += s[p] / sum * tensor::fp16_to_fp32(a.v[g * a.v_head_stride + p * a.v_stride + i]);
        }
        out[t * a.out_stride + h * a.head_dim_v + i] = static_cast<float>(acc);
      }
    }
  }
  return out;
}

struct Shape {
  const char* name;
  int n_head, n_head_kv, dk, dv, n_tokens, pos0, n_threads;
  bool v_in_k = false;     // V is the first dv values of each K row (deepseek2 absorbed MLA)
  bool head_major = true;  // cache [n_head_kv, n_ctx, d], else [n_ctx, n_head_kv, d]
  bool k_blocked = false;  // K in blocks of kKeyBlock positions (as the KV cache stores it)
};

// A cache of random f16 values in the given layout; positions from n_valid on hold NaN, so that
// reading one would poison the result. Blocked: head-major, each head's positions rounded up to
// whole blocks (the padding is NaN too).
struct Cache {
  std::vector<std::uint16_t> data;
  std::int64_t stride = 0, head_stride = 0;
  int block = 1;
  Cache(int n_ctx, int n_valid, int n_kv, int d, bool head_major, std::uint32_t seed,
        bool blocked = false) {
    block = blocked ? kKeyBlock : 1;
    const int n_pos = (n_ctx + block - 1) / block * block;
    const auto x = random_vector(static_cast<std::size_t>(n_pos) * n_kv * d, seed);
    data.assign(x.size(), std::uint16_t{0x7E00});
    stride = head_major || blocked ? d : static_cast<std::int64_t>(n_kv) * d;
    head_stride = head_major || blocked ? static_cast<std::int64_t>(n_pos) * d : d;
    AttentionArgs layout;
    layout.k_stride = stride;
    layout.k_head_stride = head_stride;
    layout.k_block = block;
    layout.head_dim_k = d;
    for (int p = 0; p < n_valid; ++p) {
      for (int g = 0; g < n_kv; ++g) {
        for (int i = 0; i < d; ++i) {
          const std::int64_t at = key_offset(layout, g, p, i);
          data[static_cast<std::size_t>(at)] =
              tensor::fp32_to_fp16(x[static_cast<std::size_t>(at)]);
        }
      }
    }
  }
};

class AttentionShapes : public testing::TestWithParam<Shape> {};

TEST_P(AttentionShapes, EveryIsaMatchesTheReferenceAndScalar) {
  const Shape& sh = GetParam();
  const int n_ctx = sh.pos0 + sh.n_tokens + 3;  // unused rows past the batch must not be read
  const std::int64_t q_stride = static_cast<std::int64_t>(sh.n_head) * sh.dk;
  const auto q = random_vector(static_cast<std::size_t>(sh.n_tokens) * q_stride, 5);
  const int n_valid = sh.pos0 + sh.n_tokens;
  const Cache k(n_ctx, n_valid, sh.n_head_kv, sh.dk, sh.head_major, 6, sh.k_blocked);
  const Cache v(n_ctx, n_valid, sh.n_head_kv, sh.dv, sh.head_major, 7);
  const std::int64_t out_stride = static_cast<std::int64_t>(sh.n_head) * sh.dv + 3;

  AttentionArgs a;
  a.q = q.data();
  a.q_stride = q_stride;
  a.k = k.data.data();
  a.k_stride = k.stride;
  a.k_head_stride = k.head_stride;
  a.k_block = k.block;
  a.v = sh.v_in_k ? k.data.data() : v.data.data();
  a.v_stride = sh.v_in_k ? k.stride : v.stride;
  a.v_head_stride = sh.v_in_k ? k.head_stride : v.head_stride;
  a.n_tokens = sh.n_tokens;
  a.pos0 = sh.pos0;
  a.n_head = sh.n_head;
  a.n_head_kv = sh.n_head_kv;
  a.head_dim_k = sh.dk;
  a.head_dim_v = sh.dv;
  a.out_stride = out_stride;
  a.scale = 1.0f / std::sqrt(static_cast<float>(sh.dk));
  const auto ref = naive_attention(a);

  ThreadPool pool(sh.n_threads);
  // Sized for one token at position 0: the scratch must not depend on context or batch length.
  AttentionArgs sizing = a;
  sizing.pos0 = 0;
  sizing.n_tokens = 1;
  std::vector<float> scratch(attention_scratch_floats(sizing, pool.size()));
  a.scratch = scratch.data();

  std::vector<float> scalar_out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kNeon}) {
    if (!isa_supported(isa)) continue;
    set_isa_override(isa);
    std::vector<float> out(static_cast<std::size_t>(sh.n_tokens) * out_stride, -7.0f);
    a.out = out.data();
    attention(a, pool);
    clear_isa_override();
    for (int t = 0; t < sh.n_tokens; ++t) {
      for (std::int64_t i = 0; i < out_stride; ++i) {
        const std::size_t at = static_cast<std::size_t>(t) * out_stride + i;
        if (i >= static_cast<std::int64_t>(sh.n_head) * sh.dv) {
          ASSERT_EQ(out[at], -7.0f) << "wrote past the heads, " << isa_name(isa);
          continue;
        }
        ASSERT_NEAR(out[at], ref[at], 2e-5)
            << sh.name << " " << isa_name(isa) << " t " << t << " i " << i;
        if (!scalar_out.empty()) {
          ASSERT_NEAR(out[at], scalar_out[at], 2e-5) << isa_name(isa);
        }
      }
    }
    if (isa == Isa::kScalar) scalar_out = out;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionShapes,
    testing::Values(Shape{"mha_prefill", 4, 4, 64, 64, 7, 0, 2},
                    Shape{"gqa4_prefill_after_prefix", 8, 2, 64, 64, 5, 9, 2},
                    Shape{"position_major_layout", 8, 2, 64, 48, 3, 30, 2, false, false},
                    Shape{"gqa8_head128", 16, 2, 128, 128, 4, 300, 2},
                    Shape{"odd_sizes_gqa3", 6, 2, 29, 19, 5, 4, 2},
                    Shape{"deepseek_k192_v128", 4, 4, 192, 128, 3, 6, 2},
                    Shape{"absorbed_latent_v_in_k", 16, 1, 80, 64, 3, 40, 2, true},
                    // Batches long enough that one item takes several tokens (masked apart).
                    Shape{"mha_prefill_token_blocks", 4, 4, 64, 64, 37, 3, 2},
                    Shape{"gqa4_prefill_blocks_cross_tile", 8, 2, 64, 64, 45, 260, 2},
                    Shape{"gqa2_prefill_blocks_one_thread", 4, 2, 32, 32, 19, 0, 1},
                    Shape{"decode_split_positions", 8, 2, 64, 64, 1, 700, 2},
                    // K blocked by 16 positions, as the KV cache stores it for GQA models.
                    Shape{"blocked_mha_prefill", 4, 4, 64, 64, 37, 3, 2, false, true, true},
                    Shape{"blocked_gqa4_cross_tile", 8, 2, 64, 64, 45, 260, 2, false, true, true},
                    Shape{"blocked_odd_sizes", 6, 2, 29, 19, 5, 4, 2, false, true, true},
                    Shape{"blocked_decode_split", 8, 2, 64, 64, 1, 700, 2, false, true, true},
                    // Prefill items of many rows (the wide loops on f32 tiles): odd sizes with
                    // V rows not a whole number of vectors, K and V of different sizes across
                    // several tiles, and a GQA batch whose items straddle tile boundaries.
                    Shape{"blocked_wide_odd_sizes", 6, 2, 29, 19, 40, 20, 1, false, true, true},
                    Shape{"blocked_wide_k192_v128", 4, 4, 192, 128, 24, 300, 1, false, true, true},
                    Shape{"blocked_wide_gqa4_tiles", 8, 2, 64, 64, 70, 200, 2, false, true, true},
                    Shape{"blocked_decode_one_thread", 32, 8, 64, 64, 1, 521, 1, false, true, true},
                    Shape{"decode_split_odd", 3, 1, 40, 24, 1, 2999, 3},
                    Shape{"decode_one_thread", 32, 8, 64, 64, 1, 520, 1}),
    [](const testing::TestParamInfo<Shape>& info) { return std::string(info.param.name); });

TEST(Attention, OverOnePositionReturnsItsValue) {
  ThreadPool pool(1);
  const std::vector<float> q = {1, 2};
  const std::vector<std::uint16_t> k = to_f16({3, 4});
  const std::vector<std::uint16_t> v = to_f16({5, -6, 7.5f});
  std::vector<float> out(3);
  AttentionArgs a;
  a.q = q.data();
  a.q_stride = 2;
  a.k = k.data();
  a.k_stride = 2;
  a.v = v.data();
  a.v_stride = 3;
  a.out = out.data();
  a.out_stride = 3;
  a.n_tokens = 1;
  a.n_head = 1;
  a.n_head_kv = 1;
  a.head_dim_k = 2;
  a.head_dim_v = 3;
  std::vector<float> scratch(attention_scratch_floats(a, pool.size()));
  a.scratch = scratch.data();
  attention(a, pool);
  EXPECT_EQ(out, (std::vector<float>{5, -6, 7.5f}));
}

TEST(Attention, F16RowConversionRoundsLikeTheScalarReferenceOnEveryIsa) {
  // Normal values, ties, values that overflow to inf, subnormals, zeros of both signs; odd length
  // so that every path has a tail.
  std::vector<float> x = random_vector(77, 11, 3.0f);
  x[0] = 1.0f + 1.0f / 2048.0f;  // halfway between two halves: ties to even
  x[1] = 1.0f + 3.0f / 2048.0f;
  x[2] = 70000.0f;
  x[3] = -1e-6f;
  x[4] = 3e-8f;
  x[5] = -0.0f;
  x[6] = 65504.0f;
  x[7] = std::numeric_limits<float>::infinity();
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kNeon}) {
    if (!isa_supported(isa)) continue;
    set_isa_override(isa);
    for (std::int64_t n : {std::int64_t{77}, std::int64_t{16}, std::int64_t{5}}) {
      std::vector<std::uint16_t> y(n + 1, 0xABCD);
      f32_to_f16_row(x.data(), y.data(), n);
      for (std::int64_t i = 0; i < n; ++i)
        ASSERT_EQ(y[i], tensor::fp32_to_fp16(x[i])) << isa_name(isa) << " i " << i;
      ASSERT_EQ(y[n], 0xABCD) << "wrote past the row, " << isa_name(isa);
    }
    clear_isa_override();
  }
}

}  // namespace
}  // namespace herd::kernels
