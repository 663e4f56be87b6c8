// F32, F16 and BF16 rows: plain element conversions (tensor/fp16.h holds the bit-exact scalars).
#include <cstring>

#include "tensor/fp16.h"
#include "tensor/quants.h"

namespace herd::tensor {
namespace {

// Halves go through memcpy: these converters take any byte address a caller hands them, and the
// copy compiles to the same plain load or store.
std::uint16_t load_half(const void* row, std::int64_t i) {
  std::uint16_t h;
  std::memcpy(&h, static_cast<const std::uint8_t*>(row) + i * sizeof h, sizeof h);
  return h;
}

void store_half(void* row, std::int64_t i, std::uint16_t h) {
  std::memcpy(static_cast<std::uint8_t*>(row) + i * sizeof h, &h, sizeof h);
}

}  // namespace

void dequantize_row_f32(const void* src, float* dst, std::int64_t count) {
  std::memcpy(dst, src, static_cast<std::size_t>(count) * sizeof(float));
}

void dequantize_row_f16(const void* src, float* dst, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) dst[i] = fp16_to_fp32(load_half(src, i));
}

void dequantize_row_bf16(const void* src, float* dst, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) dst[i] = bf16_to_fp32(load_half(src, i));
}

void quantize_row_f32(const float* src, void* dst, std::int64_t count) {
  std::memcpy(dst, src, static_cast<std::size_t>(count) * sizeof(float));
}

void quantize_row_f16(const float* src, void* dst, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) store_half(dst, i, fp32_to_fp16(src[i]));
}

void quantize_row_bf16(const float* src, void* dst, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) store_half(dst, i, fp32_to_bf16(src[i]));
}

}  // namespace herd::tensor
