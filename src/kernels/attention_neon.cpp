// NEON loops of the attention kernel (AArch64; 4 f32 lanes), same structure as
// attention_avx2.cpp. Only base ARMv8.0 Advanced SIMD is used (f16 <-> f32 conversions are part
// of it). Tails (head sizes not a multiple of 4) go through a zero-padded copy.
#include "kernels/attention_neon.h"

#include <arm_neon.h>

#include <cstring>
#include <limits>

namespace herd::kernels::neon {

namespace {

float32x4_t load_f16(const std::uint16_t* p, int count) {
  if (count >= 4) return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
  std::uint16_t tmp[4] = {};
  std::memcpy(tmp, p, static_cast<std::size_t>(count) * sizeof(std::uint16_t));
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(tmp)));
}

float32x4_t load_f32(const float* p, int count) {
  if (count >= 4) return vld1q_f32(p);
  float tmp[4] = {};
  std::memcpy(tmp, p, static_cast<std::size_t>(count) * sizeof(float));
  return vld1q_f32(tmp);
}

void store_f32(float* p, float32x4_t x, int count) {
  if (count >= 4) return vst1q_f32(p, x);
  float tmp[4];
  vst1q_f32(tmp, x);
  std::memcpy(p, tmp, static_cast<std::size_t>(count) * sizeof(float));
}

template <int NQ>
void scores_n(const float* q, int d, const std::uint16_t* k, std::int64_t k_stride, int n,
              float scale, float* s, int s_stride) {
  for (int i = 0; i < n; ++i) {
    const std::uint16_t* row = k + i * k_stride;
    float32x4_t acc[NQ];
    for (int h = 0; h < NQ; ++h) acc[h] = vdupq_n_f32(0.0f);
    for (int j = 0; j < d; j += 4) {
      const float32x4_t kv = load_f16(row + j, d - j);
      for (int h = 0; h < NQ; ++h) acc[h] = vfmaq_f32(acc[h], load_f32(q + h * d + j, d - j), kv);
    }
    for (int h = 0; h < NQ; ++h) s[h * s_stride + i] = vaddvq_f32(acc[h]) * scale;
  }
}

constexpr int kRun = 32;  // rows per pass, small enough to stay in L1 across column blocks

template <int NQ>
void accumulate_n(const float* w, int w_stride, const std::uint16_t* v, std::int64_t v_stride,
                  int n, int d, float* acc) {
  for (int i0 = 0; i0 < n; i0 += kRun) {
    const int i1 = i0 + kRun < n ? i0 + kRun : n;
    for (int j = 0; j < d; j += 4) {
      float32x4_t a[NQ];
      for (int h = 0; h < NQ; ++h) a[h] = load_f32(acc + h * d + j, d - j);
      for (int i = i0; i < i1; ++i) {
        const float32x4_t x = load_f16(v + i * v_stride + j, d - j);
        for (int h = 0; h < NQ; ++h) a[h] = vfmaq_n_f32(a[h], x, w[h * w_stride + i]);
      }
      for (int h = 0; h < NQ; ++h) store_f32(acc + h * d + j, a[h], d - j);
    }
  }
}

// Blocked K (kernels/attention.h), 8 positions of a 16-position block per pass: lane l of the
// pair of vectors at dimension j is position 16 * block + 8 * half + l.
template <int NQ>
void scores_blocked_n(const float* q, int d, const std::uint16_t* k, int p0, int n, float scale,
                      float* s, int s_stride) {
  for (int first = p0 / 8 * 8; first < p0 + n; first += 8) {
    const std::uint16_t* block = k + static_cast<std::int64_t>(first / 16) * 16 * d + first % 16;
    float32x4_t acc[NQ][2];
    for (int h = 0; h < NQ; ++h) acc[h][0] = acc[h][1] = vdupq_n_f32(0.0f);
    for (int j = 0; j < d; ++j) {
      const uint16x8_t kh = vld1q_u16(block + j * 16);
      const float32x4_t k0 = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(kh)));
      const float32x4_t k1 = vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(kh)));
      for (int h = 0; h < NQ; ++h) {
        acc[h][0] = vfmaq_n_f32(acc[h][0], k0, q[h * d + j]);
        acc[h][1] = vfmaq_n_f32(acc[h][1], k1, q[h * d + j]);
      }
    }
    const int lo = first < p0 ? p0 - first : 0;
    const int hi = first + 8 > p0 + n ? p0 + n - first : 8;
    for (int h = 0; h < NQ; ++h) {
      float lane[8];
      vst1q_f32(lane, vmulq_n_f32(acc[h][0], scale));
      vst1q_f32(lane + 4, vmulq_n_f32(acc[h][1], scale));
      for (int l = lo; l < hi; ++l) s[h * s_stride + first + l - p0] = lane[l];
    }
  }
}

void scores(const float* q, int n_q, int d, const std::uint16_t* k, std::int64_t k_stride, int n,
            float scale, float* s, int s_stride) {
  with_head_count(n_q, [&](auto nq) { scores_n<nq()>(q, d, k, k_stride, n, scale, s, s_stride); });
}

void scores_blocked(const float* q, int n_q, int d, const std::uint16_t* k, int p0, int n,
                    float scale, float* s, int s_stride) {
  with_head_count(n_q,
                  [&](auto nq) { scores_blocked_n<nq()>(q, d, k, p0, n, scale, s, s_stride); });
}

void accumulate(const float* w, int w_stride, int n_q, const std::uint16_t* v,
                std::int64_t v_stride, int n, int d, float* acc) {
  with_head_count(n_q, [&](auto nq) { accumulate_n<nq()>(w, w_stride, v, v_stride, n, d, acc); });
}

float max(const float* x, int n) {
  float32x4_t m = vdupq_n_f32(-std::numeric_limits<float>::infinity());
  int i = 0;
  for (; i + 4 <= n; i += 4) m = vmaxq_f32(m, vld1q_f32(x + i));
  float out = vmaxvq_f32(m);
  for (; i < n; ++i) out = x[i] > out ? x[i] : out;
  return out;
}

// exp(x) for x <= 0, as attention_avx2.cpp: x = n ln2 + r, e^r by Taylor to degree 7, 2^n built
// in the exponent bits (x clamped to -87 so that 2^n stays a normal number).
float32x4_t exp_nonpositive(float32x4_t x) {
  x = vmaxq_f32(x, vdupq_n_f32(-87.0f));
  const float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504089f));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693145751953125f));
  r = vfmsq_f32(r, n, vdupq_n_f32(1.428606765330187e-06f));
  float32x4_t p = vdupq_n_f32(1.0f / 5040.0f);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 720.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 120.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 24.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 6.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
  const int32x4_t bits = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  return vmulq_f32(p, vreinterpretq_f32_s32(bits));
}

float exp_sum(float* x, int n, float max) {
  const float32x4_t vmax = vdupq_n_f32(max);
  float32x4_t sum = vdupq_n_f32(0.0f);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t e = exp_nonpositive(vsubq_f32(vld1q_f32(x + i), vmax));
    vst1q_f32(x + i, e);
    sum = vaddq_f32(sum, e);
  }
  float total = vaddvq_f32(sum);
  if (i < n) {
    const int count = n - i;
    float tmp[4];
    vst1q_f32(tmp, exp_nonpositive(vsubq_f32(load_f32(x + i, count), vmax)));
    for (int l = 0; l < count; ++l) total += (x[i + l] = tmp[l]);
  }
  return total;
}

// fcvtn rounds to nearest even and keeps subnormals, infinities and signed zeros: the same bits
// as tensor::fp32_to_fp16 (NaN payloads aside).
void to_f16(const float* x, std::uint16_t* y, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
  if (i < n) {
    const int count = static_cast<int>(n - i);
    std::uint16_t tmp[4];
    vst1_u16(tmp, vreinterpret_u16_f16(vcvt_f16_f32(load_f32(x + i, count))));
    std::memcpy(y + i, tmp, static_cast<std::size_t>(count) * sizeof(std::uint16_t));
  }
}

}  // namespace

const AttentionLoops& attention_loops() {
  static constexpr AttentionLoops loops{&scores, &accumulate, &scores_blocked, &max,    &exp_sum,
                                        &to_f16, nullptr,     nullptr,         nullptr, nullptr};
  return loops;
}

}  // namespace herd::kernels::neon
