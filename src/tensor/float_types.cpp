// F32, F16 and BF16 rows: plain element conversions (tensor/fp16.h holds the bit-exact scalars).
#include <cstring>

#include "tensor/fp16.h"
#include "tensor/quants.h"

namespace herd::tensor {

void dequantize_row_f32(const void* src, float* dst, std::int64_t count) {
  std::memcpy(dst, src, static_cast<std::size_t>(count) * sizeof(float));
}

void dequantize_row_f16(const void* src, float* dst, std::int64_t count) {
  const auto* h = static_cast<const std::uint16_t*>(src);
  for (std::int64_t i = 0; i < count; ++i) dst[i] = fp16_to_fp32(h[i]);
}

void dequantize_row_bf16(const void* src, float* dst, std::int64_t count) {
  const auto* h = static_cast<const std::uint16_t*>(src);
  for (std::int64_t i = 0; i < count; ++i) dst[i] = bf16_to_fp32(h[i]);
}

void quantize_row_f32(const float* src, void* dst, std::int64_t count) {
  std::memcpy(dst, src, static_cast<std::size_t>(count) * sizeof(float));
}

void quantize_row_f16(const float* src, void* dst, std::int64_t count) {
  auto* h = static_cast<std::uint16_t*>(dst);
  for (std::int64_t i = 0; i < count; ++i) h[i] = fp32_to_fp16(src[i]);
}

void quantize_row_bf16(const float* src, void* dst, std::int64_t count) {
  auto* h = static_cast<std::uint16_t*>(dst);
  for (std::int64_t i = 0; i < count; ++i) h[i] = fp32_to_bf16(src[i]);
}

}  // namespace herd::tensor
