// Dequantization of the K-quant super-blocks (256 elements), transcribing the formulas of
// ggml-quants.c dequantize_row_q{2..6}_K; layouts are documented in tensor/blocks.h.
#include "tensor/blocks.h"
#include "tensor/fp16.h"
#include "tensor/quants.h"

namespace herd::tensor {

void dequantize_row_q2_k(const void* src, float* dst, std::int64_t count) {
  const auto* b = static_cast<const BlockQ2_K*>(src);
  for (std::int64_t i = 0; i < count / kQKK; ++i) {
    const float d = fp16_to_fp32(b[i].d);
    const float dmin = fp16_to_fp32(b[i].dmin);
    const std::uint8_t* q = b[i].qs;
    int is = 0;
    for (int half = 0; half < 2; ++half, q += 32) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int part = 0; part < 2; ++part) {
          const std::uint8_t sc = b[i].scales[is++];
          const float dl = d * static_cast<float>(sc & 0xF);
          const float ml = dmin * static_cast<float>(sc >> 4);
          for (int l = 0; l < 16; ++l) {
            *dst++ = dl * static_cast<float>((q[l + 16 * part] >> shift) & 3) - ml;
          }
        }
      }
    }
  }
}

void dequantize_row_q3_k(const void* src, float* dst, std::int64_t count) {
  const auto* b = static_cast<const BlockQ3_K*>(src);
  for (std::int64_t i = 0; i < count / kQKK; ++i) {
    const float d = fp16_to_fp32(b[i].d);
    std::int8_t scales[16];
    unpack_q3_k_scales(b[i].scales, scales);
    const std::uint8_t* q = b[i].qs;
    const std::uint8_t* hm = b[i].hmask;
    int is = 0;
    std::uint8_t m = 1;
    for (int half = 0; half < 2; ++half, q += 32) {
      for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
        for (int part = 0; part < 2; ++part) {
          const float dl = d * static_cast<float>(scales[is++]);
          for (int l = 16 * part; l < 16 * part + 16; ++l) {
            const int v = ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
            *dst++ = dl * static_cast<float>(v);
          }
        }
      }
    }
  }
}

void dequantize_row_q4_k(const void* src, float* dst, std::int64_t count) {
  const auto* b = static_cast<const BlockQ4_K*>(src);
  for (std::int64_t i = 0; i < count / kQKK; ++i) {
    const float d = fp16_to_fp32(b[i].d);
    const float dmin = fp16_to_fp32(b[i].dmin);
    const std::uint8_t* q = b[i].qs;
    for (int is = 0; is < 8; is += 2, q += 32) {
      std::uint8_t sc, m;
      get_scale_min_k4(is, b[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      get_scale_min_k4(is + 1, b[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *dst++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *dst++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

void dequantize_row_q5_k(const void* src, float* dst, std::int64_t count) {
  const auto* b = static_cast<const BlockQ5_K*>(src);
  for (std::int64_t i = 0; i < count / kQKK; ++i) {
    const float d = fp16_to_fp32(b[i].d);
    const float dmin = fp16_to_fp32(b[i].dmin);
    const std::uint8_t* ql = b[i].qs;
    const std::uint8_t* qh = b[i].qh;
    std::uint8_t u1 = 1, u2 = 2;
    for (int is = 0; is < 8; is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
      std::uint8_t sc, m;
      get_scale_min_k4(is, b[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      get_scale_min_k4(is + 1, b[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) {
        *dst++ = d1 * static_cast<float>((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        *dst++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
      }
    }
  }
}

void dequantize_row_q6_k(const void* src, float* dst, std::int64_t count) {
  const auto* b = static_cast<const BlockQ6_K*>(src);
  for (std::int64_t i = 0; i < count / kQKK; ++i) {
    const float d = fp16_to_fp32(b[i].d);
    const std::uint8_t* ql = b[i].ql;
    const std::uint8_t* qh = b[i].qh;
    const std::int8_t* sc = b[i].scales;
    for (int half = 0; half < 2; ++half, dst += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        dst[l] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
        dst[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        dst[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        dst[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
}

void dequantize_row_q8_k(const void* src, float* dst, std::int64_t count) {
  const auto* b = static_cast<const BlockQ8_K*>(src);
  for (std::int64_t i = 0; i < count / kQKK; ++i) {
    for (int j = 0; j < kQKK; ++j) *dst++ = b[i].d * static_cast<float>(b[i].qs[j]);
  }
}

}  // namespace herd::tensor
