// Rounding activation rows to 8-bit blocks before integer dot products (formats in kernels/dot.h).
// Both formats round x * 127 / amax to nearest even, so the vector versions (x86 kernels) produce
// exactly the same bytes as these scalar ones.
#pragma once

#include <cstdint>

namespace herd::kernels {

// n is a multiple of 32; out holds n / 32 BlockQ8A.
void quantize_row_q8a_scalar(const float* x, void* out, std::int64_t n);
// n is a multiple of 256; out holds n / 256 tensor::BlockQ8_K.
void quantize_row_q8k_scalar(const float* x, void* out, std::int64_t n);

}  // namespace herd::kernels
