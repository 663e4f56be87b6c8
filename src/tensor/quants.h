// Row converters between float and each tensor type. `count` is a whole number of blocks.
// Dequantizers are exact transcriptions of ggml's formulas (ggml-quants.c dequantize_row_*);
// quantizers are herd's own reference versions: same layouts, sane error, not bit-identical to
// llama.cpp's (which searches scales harder for the K-quants).
// Most callers want the table instead: traits(type).dequantize / .quantize (tensor/type.h).
#pragma once

#include <cstdint>

namespace herd::tensor {

void dequantize_row_f32(const void* src, float* dst, std::int64_t count);
void dequantize_row_f16(const void* src, float* dst, std::int64_t count);
void dequantize_row_bf16(const void* src, float* dst, std::int64_t count);
void quantize_row_f32(const float* src, void* dst, std::int64_t count);
void quantize_row_f16(const float* src, void* dst, std::int64_t count);
void quantize_row_bf16(const float* src, void* dst, std::int64_t count);

void dequantize_row_q4_0(const void* src, float* dst, std::int64_t count);
void dequantize_row_q4_1(const void* src, float* dst, std::int64_t count);
void dequantize_row_q5_0(const void* src, float* dst, std::int64_t count);
void dequantize_row_q5_1(const void* src, float* dst, std::int64_t count);
void dequantize_row_q8_0(const void* src, float* dst, std::int64_t count);
void dequantize_row_q8_1(const void* src, float* dst, std::int64_t count);
void quantize_row_q4_0(const float* src, void* dst, std::int64_t count);
void quantize_row_q4_1(const float* src, void* dst, std::int64_t count);
void quantize_row_q5_0(const float* src, void* dst, std::int64_t count);
void quantize_row_q5_1(const float* src, void* dst, std::int64_t count);
void quantize_row_q8_0(const float* src, void* dst, std::int64_t count);
void quantize_row_q8_1(const float* src, void* dst, std::int64_t count);

void dequantize_row_q2_k(const void* src, float* dst, std::int64_t count);
void dequantize_row_q3_k(const void* src, float* dst, std::int64_t count);
void dequantize_row_q4_k(const void* src, float* dst, std::int64_t count);
void dequantize_row_q5_k(const void* src, float* dst, std::int64_t count);
void dequantize_row_q6_k(const void* src, float* dst, std::int64_t count);
void dequantize_row_q8_k(const void* src, float* dst, std::int64_t count);
void quantize_row_q2_k(const float* src, void* dst, std::int64_t count);
void quantize_row_q3_k(const float* src, void* dst, std::int64_t count);
void quantize_row_q4_k(const float* src, void* dst, std::int64_t count);
void quantize_row_q5_k(const float* src, void* dst, std::int64_t count);
void quantize_row_q6_k(const float* src, void* dst, std::int64_t count);
void quantize_row_q8_k(const float* src, void* dst, std::int64_t count);

}  // namespace herd::tensor
