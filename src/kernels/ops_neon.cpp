// NEON sum of squares for rms_norm (ops.cpp): the portable loop is one chain of dependent double
// adds. Four vectors of two doubles hold exactly the portable version's eight partial sums
// (lane l of vector v is partial 2 v + l); a float squared is exact in double, so fusing the
// multiply-add changes no bit.
#include "kernels/ops_neon.h"

#include <arm_neon.h>

#include <cstring>

namespace herd::kernels::neon {

double sum_squares(const float* x, std::int64_t n) {
  float64x2_t acc[4] = {vdupq_n_f64(0.0), vdupq_n_f64(0.0), vdupq_n_f64(0.0), vdupq_n_f64(0.0)};
  auto step = [&](const float* p) {
    const float32x4_t lo = vld1q_f32(p), hi = vld1q_f32(p + 4);
    const float64x2_t v[4] = {vcvt_f64_f32(vget_low_f32(lo)), vcvt_high_f64_f32(lo),
                              vcvt_f64_f32(vget_low_f32(hi)), vcvt_high_f64_f32(hi)};
    for (int k = 0; k < 4; ++k) acc[k] = vfmaq_f64(acc[k], v[k], v[k]);
  };
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) step(x + i);
  if (i < n) {
    float tail[8] = {};  // zeros add nothing
    std::memcpy(tail, x + i, static_cast<std::size_t>(n - i) * sizeof(float));
    step(tail);
  }
  double part[8];
  for (int k = 0; k < 4; ++k) vst1q_f64(part + 2 * k, acc[k]);
  double sum = 0.0;
  for (double p : part) sum += p;
  return sum;
}

}  // namespace herd::kernels::neon
