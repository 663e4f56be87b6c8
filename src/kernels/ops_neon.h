// NEON versions of element-wise operations of ops.cpp (AArch64 only), internal to kernels/.
#pragma once

#include <cstdint>

namespace herd::kernels {

#if defined(__aarch64__)
namespace neon {
// As ops.cpp's portable sum_squares, bit for bit: eight double partial sums, element i in
// partial i % 8, added in order at the end.
double sum_squares(const float* x, std::int64_t n);
}  // namespace neon
#endif

}  // namespace herd::kernels
