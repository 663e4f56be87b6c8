#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "kernels/ops_neon.h"
#include "util/cpu_features.h"

namespace herd::kernels {

#if defined(__x86_64__) || defined(_M_X64)
namespace avx512 {
// ops_avx512.cpp
double sum_squares(const float* x, std::int64_t n);
void swiglu(const float* gate, const float* up, float* out, std::int64_t n);
}  // namespace avx512
#endif

namespace {

// Sum of x[i]^2 in double: long rows of large activations lose bits in a float sum. Lane l of
// eight partial sums takes the elements i with i % 8 == l, and the lanes are added in order at
// the end: the AVX-512 version keeps exactly these lanes in one vector, so both give the same
// bits (a float squared is exact in double, so fused or not makes no difference either). One
// sequential sum was a chain of dependent adds, ~1% of prefill time.
double sum_squares(const float* x, std::int64_t n) {
#if defined(__x86_64__) || defined(_M_X64)
  if (active_isa() == Isa::kAvx512) return avx512::sum_squares(x, n);
#elif defined(__aarch64__)
  if (active_isa() == Isa::kNeon) return neon::sum_squares(x, n);
#endif
  constexpr int kLanes = 8;
  double part[kLanes] = {};
  for (std::int64_t i = 0; i < n; ++i) part[i % kLanes] += static_cast<double>(x[i]) * x[i];
  double sum = 0.0;
  for (double p : part) sum += p;
  return sum;
}

}  // namespace

void rms_norm(const float* x, const float* w, float* y, std::int64_t n, float eps) {
  const double sum = sum_squares(x, n);
  const float scale = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(n) + eps));
  if (w) {
    for (std::int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
  } else {
    for (std::int64_t i = 0; i < n; ++i) y[i] = x[i] * scale;
  }
}

void rms_norm_rows(float* x, const float* w, std::int64_t rows, std::int64_t n, std::int64_t stride,
                   float eps) {
  for (std::int64_t r = 0; r < rows; ++r) rms_norm(x + r * stride, w, x + r * stride, n, eps);
}

namespace {

// YaRN correction range (ggml_rope_yarn_corr_dims): the dimensions whose wavelength lies between
// beta_fast and beta_slow rotations over the original context are interpolated gradually.
float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rotations, float base) {
  return static_cast<float>(n_dims) *
         std::log(static_cast<float>(n_ctx_orig) /
                  (n_rotations * 2.0f * std::numbers::pi_v<float>)) /
         (2.0f * std::log(base));
}

float yarn_ramp(float low, float high, int i0) {
  const float y = (static_cast<float>(i0 / 2) - low) / std::max(0.001f, high - low);
  return 1.0f - std::min(1.0f, std::max(0.0f, y));
}

}  // namespace

void rope_cos_sin(const RopeConfig& c, std::int64_t pos, float* cos_sin) {
  const int n_dims = c.n_rot;
  float corr_low = 0.0f, corr_high = 0.0f;
  if (c.ext_factor != 0.0f) {
    corr_low =
        std::max(0.0f, std::floor(yarn_corr_dim(n_dims, c.n_ctx_orig, c.beta_fast, c.freq_base)));
    corr_high = std::min(static_cast<float>(n_dims - 1),
                         std::ceil(yarn_corr_dim(n_dims, c.n_ctx_orig, c.beta_slow, c.freq_base)));
  }
  const float theta_scale = std::pow(c.freq_base, -2.0f / static_cast<float>(n_dims));
  // theta is advanced by repeated multiplication in float, as ggml does, to match its rounding.
  float theta_base = static_cast<float>(pos);
  for (int i0 = 0; i0 < n_dims; i0 += 2) {
    const float ff = c.freq_factors ? c.freq_factors[i0 / 2] : 1.0f;
    const float theta_extrap = theta_base / ff;
    const float theta_interp = c.freq_scale * theta_extrap;
    float theta = theta_interp;
    float mscale = c.attn_factor;
    if (c.ext_factor != 0.0f) {
      const float ramp_mix = yarn_ramp(corr_low, corr_high, i0) * c.ext_factor;
      theta = theta_interp * (1.0f - ramp_mix) + theta_extrap * ramp_mix;
      mscale *= 1.0f + 0.1f * std::log(1.0f / c.freq_scale);
    }
    cos_sin[i0] = std::cos(theta) * mscale;
    cos_sin[i0 + 1] = std::sin(theta) * mscale;
    theta_base *= theta_scale;
  }
}

void rope_apply(const RopeConfig& c, const float* cos_sin, float* x, int n_heads, int head_dim) {
  const int half = c.n_rot / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* head = x + static_cast<std::int64_t>(h) * head_dim;
    for (int i0 = 0; i0 < c.n_rot; i0 += 2) {
      const float cs = cos_sin[i0];
      const float sn = cos_sin[i0 + 1];
      float* a = c.neox ? head + i0 / 2 : head + i0;
      float* b = c.neox ? head + i0 / 2 + half : head + i0 + 1;
      const float x0 = *a;
      const float x1 = *b;
      *a = x0 * cs - x1 * sn;
      *b = x0 * sn + x1 * cs;
    }
  }
}

void softmax(float* x, std::int64_t n) {
  float max = -INFINITY;
  for (std::int64_t i = 0; i < n; ++i) max = std::max(max, x[i]);
  double sum = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (std::int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu(const float* gate, const float* up, float* out, std::int64_t n) {
#if defined(__x86_64__) || defined(_M_X64)
  if (active_isa() == Isa::kAvx512) return avx512::swiglu(gate, up, out, n);
#endif
  for (std::int64_t i = 0; i < n; ++i) out[i] = silu(gate[i]) * up[i];
}

}  // namespace herd::kernels
