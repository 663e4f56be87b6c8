// The 32-element block types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 (layouts in tensor/blocks.h).
// Dequantization follows ggml-quants.c; the quantizers are the simple round-to-nearest ones
// ggml uses as its reference (one scale from the extreme value of each block).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor/blocks.h"
#include "tensor/fp16.h"
#include "tensor/quants.h"

namespace herd::tensor {
namespace {

std::uint32_t load_qh(const std::uint8_t* qh) {
  std::uint32_t v;
  std::memcpy(&v, qh, sizeof v);
  return v;
}

void store_qh(std::uint8_t* qh, std::uint32_t v) {
  std::memcpy(qh, &v, sizeof v);
}

// The element of largest magnitude, with its sign.
float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void min_max(const float* x, int n, float* lo, float* hi) {
  *lo = x[0];
  *hi = x[0];
  for (int j = 1; j < n; ++j) {
    *lo = std::min(*lo, x[j]);
    *hi = std::max(*hi, x[j]);
  }
}

}  // namespace

void dequantize_row_q4_0(const void* src, float* dst, std::int64_t count) {
  const auto* b = static_cast<const BlockQ4_0*>(src);
  for (std::int64_t i = 0; i < count / kQK; ++i, dst += kQK) {
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      dst[j] = static_cast<float>((b[i].qs[j] & 0xF) - 8) * d;
      dst[j + kQK / 2] = static_cast<float>((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_row_q4_1(const void* src, float* dst, std::int64_t count) {
  const auto* b = static_cast<const BlockQ4_1*>(src);
  for (std::int64_t i = 0; i < count / kQK; ++i, dst += kQK) {
    const float d = fp16_to_fp32(b[i].d);
    const float m = fp16_to_fp32(b[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      dst[j] = static_cast<float>(b[i].qs[j] & 0xF) * d + m;
      dst[j + kQK / 2] = static_cast<float>(b[i].qs[j] >> 4) * d + m;
    }
  }
}

void dequantize_row_q5_0(const void* src, float* dst, std::int64_t count) {
  const auto* b = static_cast<const BlockQ5_0*>(src);
  for (std::int64_t i = 0; i < count / kQK; ++i, dst += kQK) {
    const float d = fp16_to_fp32(b[i].d);
    const std::uint32_t qh = load_qh(b[i].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      const int h0 = ((qh >> j) << 4) & 0x10;
      const int h1 = (qh >> (j + 12)) & 0x10;
      dst[j] = static_cast<float>(((b[i].qs[j] & 0xF) | h0) - 16) * d;
      dst[j + kQK / 2] = static_cast<float>(((b[i].qs[j] >> 4) | h1) - 16) * d;
    }
  }
}

void dequantize_row_q5_1(const void* src, float* dst, std::int64_t count) {
  const auto* b = static_cast<const BlockQ5_1*>(src);
  for (std::int64_t i = 0; i < count / kQK; ++i, dst += kQK) {
    const float d = fp16_to_fp32(b[i].d);
    const float m = fp16_to_fp32(b[i].m);
    const std::uint32_t qh = load_qh(b[i].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      const int h0 = ((qh >> j) << 4) & 0x10;
      const int h1 = (qh >> (j + 12)) & 0x10;
      dst[j] = static_cast<float>((b[i].qs[j] & 0xF) | h0) * d + m;
      dst[j + kQK / 2] = static_cast<float>((b[i].qs[j] >> 4) | h1) * d + m;
    }
  }
}

void dequantize_row_q8_0(const void* src, float* dst, std::int64_t count) {
  const auto* b = static_cast<const BlockQ8_0*>(src);
  for (std::int64_t i = 0; i < count / kQK; ++i, dst += kQK) {
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < kQK; ++j) dst[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

void dequantize_row_q8_1(const void* src, float* dst, std::int64_t count) {
  const auto* b = static_cast<const BlockQ8_1*>(src);
  for (std::int64_t i = 0; i < count / kQK; ++i, dst += kQK) {
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < kQK; ++j) dst[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

void quantize_row_q4_0(const float* src, void* dst, std::int64_t count) {
  auto* b = static_cast<BlockQ4_0*>(dst);
  for (std::int64_t i = 0; i < count / kQK; ++i, src += kQK) {
    // The extreme value maps to -8, so the full 16 levels are used on its side.
    const float d = signed_absmax(src, kQK) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>(src[j] * id + 8.5f));
      const int q1 = std::min(15, static_cast<int>(src[j + kQK / 2] * id + 8.5f));
      b[i].qs[j] = static_cast<std::uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quantize_row_q4_1(const float* src, void* dst, std::int64_t count) {
  auto* b = static_cast<BlockQ4_1*>(dst);
  for (std::int64_t i = 0; i < count / kQK; ++i, src += kQK) {
    float lo, hi;
    min_max(src, kQK, &lo, &hi);
    const float d = (hi - lo) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    b[i].m = fp32_to_fp16(lo);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>((src[j] - lo) * id + 0.5f));
      const int q1 = std::min(15, static_cast<int>((src[j + kQK / 2] - lo) * id + 0.5f));
      b[i].qs[j] = static_cast<std::uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quantize_row_q5_0(const float* src, void* dst, std::int64_t count) {
  auto* b = static_cast<BlockQ5_0*>(dst);
  for (std::int64_t i = 0; i < count / kQK; ++i, src += kQK) {
    const float d = signed_absmax(src, kQK) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    std::uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(31, static_cast<int>(src[j] * id + 16.5f));
      const int q1 = std::min(31, static_cast<int>(src[j + kQK / 2] * id + 16.5f));
      b[i].qs[j] = static_cast<std::uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<std::uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<std::uint32_t>((q1 >> 4) & 1) << (j + kQK / 2);
    }
    store_qh(b[i].qh, qh);
  }
}

void quantize_row_q5_1(const float* src, void* dst, std::int64_t count) {
  auto* b = static_cast<BlockQ5_1*>(dst);
  for (std::int64_t i = 0; i < count / kQK; ++i, src += kQK) {
    float lo, hi;
    min_max(src, kQK, &lo, &hi);
    const float d = (hi - lo) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    b[i].m = fp32_to_fp16(lo);
    std::uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(31, static_cast<int>((src[j] - lo) * id + 0.5f));
      const int q1 = std::min(31, static_cast<int>((src[j + kQK / 2] - lo) * id + 0.5f));
      b[i].qs[j] = static_cast<std::uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<std::uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<std::uint32_t>((q1 >> 4) & 1) << (j + kQK / 2);
    }
    store_qh(b[i].qh, qh);
  }
}

void quantize_row_q8_0(const float* src, void* dst, std::int64_t count) {
  auto* b = static_cast<BlockQ8_0*>(dst);
  for (std::int64_t i = 0; i < count / kQK; ++i, src += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(src[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK; ++j) b[i].qs[j] = static_cast<std::int8_t>(std::lround(src[j] * id));
  }
}

void quantize_row_q8_1(const float* src, void* dst, std::int64_t count) {
  auto* b = static_cast<BlockQ8_1*>(dst);
  for (std::int64_t i = 0; i < count / kQK; ++i, src += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(src[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      b[i].qs[j] = static_cast<std::int8_t>(std::lround(src[j] * id));
      sum += b[i].qs[j];
    }
    b[i].d = fp32_to_fp16(d);
    b[i].s = fp32_to_fp16(d * static_cast<float>(sum));
  }
}

}  // namespace herd::tensor
