// Hand-built blocks with values worked out from the layouts in ggml-common.h.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "tensor/blocks.h"
#include "tensor/fp16.h"
#include "tensor/type.h"

namespace herd::tensor {
namespace {

TEST(DequantizeKnownValues, Q4_0LowNibblesFirstThenHigh) {
  BlockQ4_0 b{};
  b.d = fp32_to_fp16(0.5f);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<std::uint8_t>(j | ((15 - j) << 4));
  float out[32];
  dequantize(Type::kQ4_0, &b, out, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], 0.5f * (j - 8));
    EXPECT_EQ(out[j + 16], 0.5f * (15 - j - 8));
  }
}

TEST(DequantizeKnownValues, Q5_0HighBitComesFromQh) {
  BlockQ5_0 b{};
  b.d = fp32_to_fp16(1.0f);
  const std::uint32_t qh = (1u << 3) | (1u << 20);  // element 3 and element 20 get bit 4
  std::memcpy(b.qh, &qh, 4);
  float out[32];
  dequantize(Type::kQ5_0, &b, out, 32);
  EXPECT_EQ(out[0], -16.0f);
  EXPECT_EQ(out[3], 0.0f);
  EXPECT_EQ(out[20], 0.0f);
  EXPECT_EQ(out[19], -16.0f);
}

TEST(DequantizeKnownValues, Q5_1AddsMin) {
  BlockQ5_1 b{};
  b.d = fp32_to_fp16(0.25f);
  b.m = fp32_to_fp16(-2.0f);
  b.qs[1] = 0x3F;  // element 1: 15, element 17: 3
  const std::uint32_t qh = 1u << 17;
  std::memcpy(b.qh, &qh, 4);
  float out[32];
  dequantize(Type::kQ5_1, &b, out, 32);
  EXPECT_EQ(out[1], 0.25f * 15 - 2.0f);
  EXPECT_EQ(out[17], 0.25f * (3 + 16) - 2.0f);
}

TEST(DequantizeKnownValues, Q4_KSixBitScalesOfUpperSubBlocks) {
  BlockQ4_K b{};
  b.d = fp32_to_fp16(1.0f);
  b.dmin = fp32_to_fp16(0.5f);
  // Sub-block 5: scale 0x25 = 37 (low 4 bits in byte 9, top 2 bits in byte 1),
  // min 0x13 = 19 (high nibble of byte 9, top 2 bits in byte 5).
  b.scales[9] = 0x5 | (0x3 << 4);
  b.scales[1] = 0x2 << 6;
  b.scales[5] = 0x1 << 6;
  std::memset(b.qs, 0x00, sizeof b.qs);
  b.qs[64 + 7] = 0x90;  // sub-block 5 = high nibbles of chunk 2: element 160 + 7 gets q = 9
  std::vector<float> out(256);
  dequantize(Type::kQ4_K, &b, out.data(), 256);
  EXPECT_EQ(out[167], 37.0f * 9 - 0.5f * 19);
  EXPECT_EQ(out[168], -0.5f * 19);
  EXPECT_EQ(out[0], 0.0f);
}

TEST(DequantizeKnownValues, Q6_KElementOrder) {
  BlockQ6_K b{};
  b.d = fp32_to_fp16(1.0f);
  for (int i = 0; i < 16; ++i) b.scales[i] = static_cast<std::int8_t>(i + 1);
  std::memset(b.ql, 0, sizeof b.ql);
  std::memset(b.qh, 0, sizeof b.qh);
  // Element 128 + 96 + 5 (second half, fourth quarter): high nibble of ql[64 + 32 + 5],
  // bits 6-7 of qh[32 + 5]. q = 0xA | (2 << 4) = 42 -> 10.
  b.ql[64 + 37] = 0xA0;
  b.qh[37] = 2 << 6;
  std::vector<float> out(256);
  dequantize(Type::kQ6_K, &b, out.data(), 256);
  EXPECT_EQ(out[229], 15.0f * 10);  // sub-block 229 / 16 = 14, scale 15
  EXPECT_EQ(out[0], -32.0f);
}

TEST(DequantizeKnownValues, Q3_KHmaskClearedMeansMinusFour) {
  BlockQ3_K b{};
  b.d = fp32_to_fp16(1.0f);
  // All 16 scales 33 -> 1: low nibble 1 for all, high 2 bits 2 (value 32 + 1 = 0b100001).
  for (int i = 0; i < 8; ++i) b.scales[i] = 0x11;
  for (int i = 8; i < 12; ++i) b.scales[i] = 0xAA;
  std::memset(b.hmask, 0xFF, sizeof b.hmask);
  b.hmask[2] = static_cast<std::uint8_t>(~(1u << 5));  // element 128 + 32 + 2 loses its high bit
  b.qs[32 + 2] = 3 << 2;                               // and has low bits 3
  std::vector<float> out(256);
  dequantize(Type::kQ3_K, &b, out.data(), 256);
  EXPECT_EQ(out[162], 3.0f - 4.0f);
  EXPECT_EQ(out[2], 0.0f);
}

TEST(DequantizeKnownValues, HalfAndBFloatAreExact) {
  const std::uint16_t h[3] = {0x3C00, 0xC000, 0x0001};  // 1, -2, smallest subnormal
  float out[3];
  dequantize(Type::kF16, h, out, 3);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], 5.9604645e-8f);
  const std::uint16_t bf[2] = {0x3F80, 0x4049};
  dequantize(Type::kBF16, bf, out, 2);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], fp32_from_bits(0x40490000u));
}

}  // namespace
}  // namespace herd::tensor
