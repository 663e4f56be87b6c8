// The dot kernels, one level below matmul:
// - the scalar kernels equal sum(dequantized weight * dequantized activation) up to float
//   rounding: their integer formulas are an exact rewrite of that sum (tolerance 2e-6 relative
//   to sum |w x|, i.e. a few dozen float roundings);
// - every vector instruction set rounds activations to the very same bytes and computes the
//   same per-block integers, so it matches the scalar kernel to float summation order (same 2e-6);
// - odd block counts, every tile width 1..8, misaligned rows.
#include "kernels/dot.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "support/misalign.h"
#include "tensor/blocks.h"
#include "tensor/type.h"

namespace herd::kernels {
namespace {

using herd::testing::kMisalign;

using tensor::Type;

std::vector<float> gaussian(std::int64_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<Isa> vector_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512, Isa::kNeon}) {
    if (isa_supported(isa)) out.push_back(isa);
  }
  return out;
}

const Type kTypes[] = {Type::kF32,  Type::kF16,  Type::kBF16, Type::kQ8_0, Type::kQ4_0,
                       Type::kQ4_1, Type::kQ5_0, Type::kQ5_1, Type::kQ2_K, Type::kQ3_K,
                       Type::kQ4_K, Type::kQ5_K, Type::kQ6_K};

// Activation rows in a kernel's format, at an address that is not vector-aligned (the blocks'
// 32-bit fields keep their alignment).
struct Prepared {
  std::vector<std::uint8_t> bytes;
  std::size_t stride = 0;
  const std::uint8_t* data() const { return bytes.data() + 4; }
};

Prepared prepare(const KernelTable& table, ActivationFormat format, const std::vector<float>& x,
                 std::int64_t n, int tokens) {
  Prepared p;
  p.stride = activation_row_bytes(format, n) + 4;
  p.bytes.assign(p.stride * tokens + 4, 0);
  for (int t = 0; t < tokens; ++t) {
    std::uint8_t* dst = p.bytes.data() + 4 + t * p.stride;
    if (format == ActivationFormat::kF32)
      std::memcpy(dst, x.data() + t * n, n * sizeof(float));
    else
      table.quantizer(format)(x.data() + t * n, dst, n);
  }
  return p;
}

std::vector<float> dequantize_activation(ActivationFormat format, const std::uint8_t* row,
                                         std::int64_t n) {
  std::vector<float> out(static_cast<std::size_t>(n));
  if (format == ActivationFormat::kF32) {
    std::memcpy(out.data(), row, n * sizeof(float));
  } else if (format == ActivationFormat::kQ8A) {
    for (std::int64_t b = 0; b < n / 32; ++b) {
      BlockQ8A blk;
      std::memcpy(&blk, row + b * sizeof(BlockQ8A), sizeof blk);
      for (int j = 0; j < 32; ++j) out[b * 32 + j] = blk.d * blk.qs[j];
    }
  } else if (format == ActivationFormat::kQ8X) {
    const std::int64_t groups = n / 32 / BlockQ8X::kBlocks;
    for (std::int64_t g = 0; g < groups; ++g) {
      BlockQ8X blk;
      std::memcpy(&blk, row + g * sizeof(BlockQ8X), sizeof blk);
      for (int k = 0; k < BlockQ8X::kBlocks; ++k) {
        for (int j = 0; j < 32; ++j) {
          out[(g * BlockQ8X::kBlocks + k) * 32 + j] =
              blk.d[k] * blk.qs[k / 4][j / 16][16 * (k % 4) + j % 16];
        }
      }
    }
    const auto tail = dequantize_activation(ActivationFormat::kQ8A, row + groups * sizeof(BlockQ8X),
                                            n - groups * BlockQ8X::kBlocks * 32);
    // An index loop: std::copy to out.begin() + offset made GCC 12 warn (-Warray-bounds) for the
    // empty tail of whole groups, where the destination is end().
    const std::size_t offset = static_cast<std::size_t>(groups) * BlockQ8X::kBlocks * 32;
    for (std::size_t i = 0; i < tail.size(); ++i) out[offset + i] = tail[i];
  } else {
    tensor::dequantize(Type::kQ8_K, row, out.data(), n);
  }
  return out;
}

// BlockQ8X holds the integers of BlockQ8A, regrouped, with its per-block sums.
void expect_q8x_matches_q8a(const std::uint8_t* q8x, const std::uint8_t* q8a, std::int64_t n) {
  EXPECT_EQ(dequantize_activation(ActivationFormat::kQ8X, q8x, n),
            dequantize_activation(ActivationFormat::kQ8A, q8a, n));
  for (std::int64_t g = 0; g < n / 32 / BlockQ8X::kBlocks; ++g) {
    BlockQ8X blk;
    std::memcpy(&blk, q8x + g * sizeof(BlockQ8X), sizeof blk);
    for (int k = 0; k < BlockQ8X::kBlocks; ++k) {
      BlockQ8A a;
      std::memcpy(&a, q8a + (g * BlockQ8X::kBlocks + k) * sizeof(BlockQ8A), sizeof a);
      for (int l = 0; l < 4; ++l) EXPECT_EQ(blk.neg_sum2[k / 4][4 * (k % 4) + l], -2 * a.sum);
    }
  }
}

struct Fixture {
  std::int64_t n;
  std::vector<std::uint8_t> w;  // one row at offset kMisalign
  std::vector<float> w_float;
  std::vector<float> x;  // 8 tokens
};

Fixture make(Type type, unsigned seed) {
  Fixture f;
  const std::int64_t block = tensor::traits(type).block_size;
  f.n = block == 1 ? 77 : (block == 32 ? 32 * 13 : 256 * 3);
  const auto src = gaussian(f.n, seed, 0.3f);
  f.w.assign(tensor::row_bytes(type, f.n) + kMisalign, 0);
  tensor::quantize(type, src.data(), f.w.data() + kMisalign, f.n);
  f.w_float.resize(f.n);
  tensor::dequantize(type, f.w.data() + kMisalign, f.w_float.data(), f.n);
  f.x = gaussian(f.n * kMaxTileTokens, seed + 1);
  return f;
}

TEST(Dot, EveryVectorIsaHasAKernelForEveryType) {
  for (Isa isa : vector_isas()) {
    for (Type t : kTypes) {
      EXPECT_NE(kernels_for(isa).find(t), nullptr) << isa_name(isa) << " " << tensor::type_name(t);
    }
  }
  for (Type t : kTypes) EXPECT_NE(scalar_kernels().find(t), nullptr) << tensor::type_name(t);
}

// On AArch64 the NEON table is the one in use where the CPU has the dot-product instructions
// (qemu-aarch64's default CPU has them: scripts/test-arm.sh), and it brings its own kernels for
// every weight type instead of the scalar fallbacks. Skipped elsewhere.
TEST(Dot, NeonTableIsActiveWhereTheCpuHasDotProduct) {
  if (!isa_supported(Isa::kNeon))
    GTEST_SKIP() << "no NEON on this CPU (" << cpu_feature_string() << ")";
  const KernelTable& table = kernels_for(Isa::kNeon);
  std::printf("cpu features: %s; active isa: %s; NEON dot table: %s\n",
              cpu_feature_string().c_str(), isa_name(active_isa()), isa_name(table.isa));
  if (!cpu_features().neon_dotprod) {
    EXPECT_EQ(table.isa, Isa::kScalar);
    GTEST_SKIP() << "NEON without the dot-product extension keeps the scalar kernels";
  }
  EXPECT_EQ(table.isa, Isa::kNeon);
  for (Type t : kTypes) {
    EXPECT_NE(table.find(t)->tile, scalar_kernels().find(t)->tile) << tensor::type_name(t);
  }
  EXPECT_NE(table.quantize_q8a, scalar_kernels().quantize_q8a);
  EXPECT_NE(table.quantize_q8k, scalar_kernels().quantize_q8k);
}

TEST(Dot, ScalarKernelsEqualDequantizedSum) {
  for (Type type : kTypes) {
    const Fixture f = make(type, 3);
    const DotKernel& k = *scalar_kernels().find(type);
    const Prepared act = prepare(scalar_kernels(), k.activation, f.x, f.n, kMaxTileTokens);
    float y[kMaxTileTokens];
    k.tile(f.n, f.w.data() + kMisalign, act.data(), act.stride, kMaxTileTokens, y, 1);
    for (int t = 0; t < kMaxTileTokens; ++t) {
      const auto xa = dequantize_activation(k.activation, act.data() + t * act.stride, f.n);
      double ref = 0, mag = 0;
      for (std::int64_t j = 0; j < f.n; ++j) {
        ref += static_cast<double>(f.w_float[j]) * xa[j];
        mag += std::fabs(static_cast<double>(f.w_float[j]) * xa[j]);
      }
      EXPECT_NEAR(y[t], ref, 2e-6 * mag) << tensor::type_name(type) << " token " << t;
    }
  }
}

TEST(Dot, VectorIsasQuantizeActivationsToTheSameBytes) {
  for (Isa isa : vector_isas()) {
    const KernelTable& table = kernels_for(isa);
    for (ActivationFormat format : {ActivationFormat::kQ8A, ActivationFormat::kQ8K}) {
      for (unsigned seed = 0; seed < 20; ++seed) {
        auto x = gaussian(512, seed, seed % 2 ? 1e-3f : 10.0f);
        if (seed == 5) std::fill(x.begin(), x.begin() + 256, 0.0f);  // an all-zero block
        if (seed == 6) x[17] = 0.5f / (127.0f / 3.0f);               // near a rounding tie
        std::vector<std::uint8_t> a(activation_row_bytes(format, 512));
        std::vector<std::uint8_t> b(a.size());
        scalar_kernels().quantizer(format)(x.data(), a.data(), 512);
        table.quantizer(format)(x.data(), b.data(), 512);
        ASSERT_EQ(a, b) << isa_name(isa) << " format " << static_cast<int>(format) << " seed "
                        << seed;
      }
    }
  }
}

TEST(Dot, Q8XActivationsHoldTheQ8AIntegersRegrouped) {
  for (Isa isa : vector_isas()) {
    const KernelTable& table = kernels_for(isa);
    if (!table.quantizer(ActivationFormat::kQ8X)) continue;
    for (std::int64_t n : {32 * 5, 32 * 8, 32 * 21}) {
      auto x = gaussian(n, static_cast<unsigned>(n), 3.0f);
      std::fill(x.begin() + 32, x.begin() + 64, 0.0f);  // an all-zero block
      std::vector<std::uint8_t> a(activation_row_bytes(ActivationFormat::kQ8A, n));
      std::vector<std::uint8_t> b(activation_row_bytes(ActivationFormat::kQ8X, n));
      scalar_kernels().quantizer(ActivationFormat::kQ8A)(x.data(), a.data(), n);
      table.quantizer(ActivationFormat::kQ8X)(x.data(), b.data(), n);
      SCOPED_TRACE(std::string(isa_name(isa)) + " n " + std::to_string(n));
      expect_q8x_matches_q8a(b.data(), a.data(), n);
    }
  }
}

TEST(Dot, VectorIsasMatchScalarForEveryTileWidth) {
  for (Isa isa : vector_isas()) {
    for (Type type : kTypes) {
      const Fixture f = make(type, 21);
      const DotKernel& ref = *scalar_kernels().find(type);
      const DotKernel& k = *kernels_for(isa).find(type);
      // A kernel may take its own layout (BlockQ8X) of the same integers.
      const Prepared ref_act = prepare(scalar_kernels(), ref.activation, f.x, f.n, kMaxTileTokens);
      const Prepared act = k.activation == ref.activation
                               ? ref_act
                               : prepare(kernels_for(isa), k.activation, f.x, f.n, kMaxTileTokens);
      float want[kMaxTileTokens];
      ref.tile(f.n, f.w.data() + kMisalign, ref_act.data(), ref_act.stride, kMaxTileTokens, want,
               1);
      for (int nc = 1; nc <= kMaxTileTokens; ++nc) {
        std::vector<float> got(static_cast<std::size_t>(nc * 3), NAN);
        k.tile(f.n, f.w.data() + kMisalign, act.data(), act.stride, nc, got.data(), 3);
        for (int t = 0; t < nc; ++t) {
          const auto xa = dequantize_activation(k.activation, act.data() + t * act.stride, f.n);
          double mag = 0;
          for (std::int64_t j = 0; j < f.n; ++j) mag += std::fabs(f.w_float[j] * xa[j]);
          EXPECT_NEAR(got[t * 3], want[t], 2e-6 * mag)
              << isa_name(isa) << " " << tensor::type_name(type) << " nc " << nc << " t " << t;
        }
      }
    }
  }
}

// Q4_K / Q5_K blocks of random bytes: every bit of the 6-bit scale/min packing, of the nibbles
// and of qh takes both values, including full-range (63) scales and mins against full-range
// weights and activations, so a misplaced bit or a saturating step shows up.
TEST(Dot, Q45KRandomBitPatternsMatchScalar) {
  for (Type type : {Type::kQ4_K, Type::kQ5_K}) {
    const std::int64_t n = 256 * 5;
    const std::size_t bytes = tensor::row_bytes(type, n);
    const std::size_t block = bytes / 5;
    std::mt19937 rng(7);
    std::vector<std::uint8_t> w(bytes + kMisalign);
    for (auto& b : w) b = static_cast<std::uint8_t>(rng());
    const std::uint16_t halves[2][2] = {{0x3C00, 0x3800}, {0x2E66, 0x3266}};  // d, dmin
    for (std::size_t i = 0; i < 5; ++i) {
      if (i == 2)
        std::memset(w.data() + kMisalign + i * block + 4, 0xFF, block - 4);  // all maximal
      std::memcpy(w.data() + kMisalign + i * block, halves[i % 2], 4);
    }
    auto x = gaussian(n * kMaxTileTokens, 9, 5.0f);
    const DotKernel& ref = *scalar_kernels().find(type);
    const Prepared act = prepare(scalar_kernels(), ref.activation, x, n, kMaxTileTokens);
    float want[kMaxTileTokens];
    ref.tile(n, w.data() + kMisalign, act.data(), act.stride, kMaxTileTokens, want, 1);
    std::vector<float> wf(n);
    tensor::dequantize(type, w.data() + kMisalign, wf.data(), n);
    double mag[kMaxTileTokens] = {};
    for (int t = 0; t < kMaxTileTokens; ++t) {
      const auto xa = dequantize_activation(ref.activation, act.data() + t * act.stride, n);
      for (std::int64_t j = 0; j < n; ++j) mag[t] += std::fabs(wf[j] * xa[j]);
    }
    for (Isa isa : vector_isas()) {
      const DotKernel& k = *kernels_for(isa).find(type);
      ASSERT_EQ(k.activation, ref.activation);
      for (int nc = 1; nc <= kMaxTileTokens; ++nc) {
        float got[kMaxTileTokens];
        k.tile(n, w.data() + kMisalign, act.data(), act.stride, nc, got, 1);
        for (int t = 0; t < nc; ++t) {
          EXPECT_NEAR(got[t], want[t], 2e-6 * mag[t])
              << isa_name(isa) << " " << tensor::type_name(type) << " nc " << nc << " t " << t;
        }
      }
    }
  }
}

// Extremes: full-range int8 weights against full-range activations must not saturate.
TEST(Dot, Q8_0ExtremesDoNotSaturate) {
  std::vector<tensor::BlockQ8_0> w(2);
  for (auto& b : w) {
    b.d = 0x3C00;  // 1.0
    for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<std::int8_t>(j % 2 ? -128 : -127);
  }
  std::vector<float> x(64, -1.0f);
  for (Isa isa : vector_isas()) {
    const KernelTable& table = kernels_for(isa);
    const DotKernel& k = *table.find(Type::kQ8_0);
    std::vector<std::uint8_t> act(activation_row_bytes(k.activation, 64));
    table.quantizer(k.activation)(x.data(), act.data(), 64);
    float y = 0;
    k.tile(64, w.data(), act.data(), act.size(), 1, &y, 1);
    // Each element: w * (-127 * d_x) with d_x = 1/127 rounded to half.
    const float dx = reinterpret_cast<const BlockQ8A*>(act.data())->d;
    EXPECT_NEAR(y, 32.0 * (127 + 128) * 127 * dx, 1e-3) << isa_name(isa);
  }
}

}  // namespace
}  // namespace herd::kernels
