// Block layouts of the quantized GGUF types, byte for byte as ggml stores them
// (ggml-common.h: block_q4_0 ... block_q8_K). Scales are IEEE half unless noted.
// Shared by the (de)quantizers here and the dot-product kernels in kernels/.
#pragma once

#include <cstdint>

namespace herd::tensor {

// Elements per block of the "legacy" 32-wide types and of the K-quant super-blocks.
inline constexpr int kQK = 32;
inline constexpr int kQKK = 256;

// x = d * (q - 8), q in 0..15. qs[j] holds element j (low nibble) and j + 16 (high nibble).
struct BlockQ4_0 {
  std::uint16_t d;
  std::uint8_t qs[kQK / 2];
};

// x = d * q + m, q in 0..15; nibble order as Q4_0.
struct BlockQ4_1 {
  std::uint16_t d;
  std::uint16_t m;
  std::uint8_t qs[kQK / 2];
};

// x = d * (q - 16), q in 0..31: low 4 bits as Q4_0, bit 4 of element j is bit j of qh
// (read as a little-endian uint32).
struct BlockQ5_0 {
  std::uint16_t d;
  std::uint8_t qh[4];
  std::uint8_t qs[kQK / 2];
};

// x = d * q + m, q in 0..31; bits as Q5_0.
struct BlockQ5_1 {
  std::uint16_t d;
  std::uint16_t m;
  std::uint8_t qh[4];
  std::uint8_t qs[kQK / 2];
};

// x = d * q, q in -127..127.
struct BlockQ8_0 {
  std::uint16_t d;
  std::int8_t qs[kQK];
};

// As Q8_0 plus s = d * sum(q) (used for the activations of Q4_1 / Q5_1 products).
struct BlockQ8_1 {
  std::uint16_t d;
  std::uint16_t s;
  std::int8_t qs[kQK];
};

// 16 sub-blocks of 16: x = d * (scales[i] & 15) * q - dmin * (scales[i] >> 4), q in 0..3.
// qs: 2 halves of 128 elements; in each, byte l of the 32-byte run holds element
// l + 32 * k at bit shift 2k (k = 0..3).
struct BlockQ2_K {
  std::uint8_t scales[kQKK / 16];
  std::uint8_t qs[kQKK / 4];
  std::uint16_t d;
  std::uint16_t dmin;
};

// 16 sub-blocks of 16: x = d * (s - 32) * (q - 4), q in 0..7; low 2 bits as Q2_K, the high
// bit in hmask (element l + 32 * b is bit b of hmask[l]); a set bit means no -4.
// 16 six-bit scales packed in 12 bytes (see unpack_q3_k_scales).
struct BlockQ3_K {
  std::uint8_t hmask[kQKK / 8];
  std::uint8_t qs[kQKK / 4];
  std::uint8_t scales[12];
  std::uint16_t d;
};

// 8 sub-blocks of 32: x = d * sc * q - dmin * m, q in 0..15, 6-bit sc and m packed in 12 bytes
// (get_scale_min_k4). qs: 4 chunks of 32 bytes, chunk c holds sub-block 2c (low nibbles) and
// 2c + 1 (high nibbles).
struct BlockQ4_K {
  std::uint16_t d;
  std::uint16_t dmin;
  std::uint8_t scales[12];
  std::uint8_t qs[kQKK / 2];
};

// As Q4_K with a fifth bit: element l of sub-block s has its bit 4 at bit s of qh[l].
struct BlockQ5_K {
  std::uint16_t d;
  std::uint16_t dmin;
  std::uint8_t scales[12];
  std::uint8_t qh[kQKK / 8];
  std::uint8_t qs[kQKK / 2];
};

// 16 sub-blocks of 16: x = d * scales[i] * (q - 32), q in 0..63 (4 low bits in ql, 2 high in qh).
// Two halves of 128; in half h, for l < 32: element l = ql[l] low | qh[l] bits 0-1,
// l + 32 = ql[l + 32] low | qh bits 2-3, l + 64 = ql[l] high | bits 4-5, l + 96 = ql[l + 32]
// high | bits 6-7 (ql advances 64 and qh 32 per half).
struct BlockQ6_K {
  std::uint8_t ql[kQKK / 2];
  std::uint8_t qh[kQKK / 4];
  std::int8_t scales[kQKK / 16];
  std::uint16_t d;
};

// Activations of K-quant products: float scale, and the sums of each 16 quants.
struct BlockQ8_K {
  float d;
  std::int8_t qs[kQKK];
  std::int16_t bsums[kQKK / 16];
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

// Scale and min of sub-block j (0..7) of a Q4_K / Q5_K block: j < 4 in the low 6 bits of
// bytes j and j + 4; j >= 4 in the nibbles of byte j + 4 plus the top 2 bits of bytes j - 4, j.
inline void get_scale_min_k4(int j, const std::uint8_t* q, std::uint8_t* sc, std::uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<std::uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<std::uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// The 16 signed scales (-32..31) of a Q3_K block: low nibbles of bytes 0..7 are scales 0..7,
// high nibbles scales 8..15; bytes 8..11 hold the top 2 bits, scale i at byte 8 + i % 4,
// shift 2 * (i / 4).
inline void unpack_q3_k_scales(const std::uint8_t* packed, std::int8_t* out) {
  for (int i = 0; i < 16; ++i) {
    int low = i < 8 ? (packed[i] & 0xF) : (packed[i - 8] >> 4);
    int high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
    out[i] = static_cast<std::int8_t>((low | (high << 4)) - 32);
  }
}

}  // namespace herd::tensor
