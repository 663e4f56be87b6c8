// Reference quantizers for the K-quants. Same layouts as ggml (tensor/blocks.h); the scale
// search is herd's own and simpler than llama.cpp's make_qkx2_quants / make_qx_quants: a few
// candidate scales per sub-block, each refined by least squares, keeping the one of least
// squared error. Results are sane (error of the order of the step size), not bit-identical.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "tensor/blocks.h"
#include "tensor/fp16.h"
#include "tensor/quants.h"

namespace herd::tensor {
namespace {

int nearest(float x) {
  return static_cast<int>(std::lround(x));
}

// Fits x ~= scale * q - min with q in 0..nmax, scale >= 0, min >= 0. Writes q, returns scale.
float fit_affine(const float* x, int n, int nmax, float* min_out, std::uint8_t* q) {
  float lo = 0.0f, hi = x[0];
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  if (hi <= lo) {
    std::fill(q, q + n, 0);
    *min_out = -lo;
    return 0.0f;
  }
  float best_err = INFINITY, best_scale = 0.0f, best_min = 0.0f;
  std::uint8_t trial[32];
  for (int step = -4; step <= 6; ++step) {
    const float iscale = (static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / (hi - lo);
    double sq = 0, sqq = 0, sx = 0, sqx = 0;
    for (int i = 0; i < n; ++i) {
      trial[i] = static_cast<std::uint8_t>(std::clamp(nearest(iscale * (x[i] - lo)), 0, nmax));
      sq += trial[i];
      sqq += static_cast<double>(trial[i]) * trial[i];
      sx += x[i];
      sqx += static_cast<double>(trial[i]) * x[i];
    }
    // Least squares for x = s * q + b, with b <= 0 (b = -min).
    const double det = n * sqq - sq * sq;
    double s = det > 0 ? (n * sqx - sq * sx) / det : 0.0;
    double b = det > 0 ? (sqq * sx - sq * sqx) / det : lo;
    if (b > 0) {
      b = 0;
      s = sqq > 0 ? sqx / sqq : 0.0;
    }
    if (s < 0) continue;
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const double e = s * trial[i] + b - x[i];
      err += e * e;
    }
    if (err < best_err) {
      best_err = static_cast<float>(err);
      best_scale = static_cast<float>(s);
      best_min = static_cast<float>(-b);
    }
  }
  *min_out = best_min;
  return best_scale;
}

// Fits x ~= scale * q with q in -nmax..nmax-1 (the scale may be negative). Returns scale.
float fit_symmetric(const float* x, int n, int nmax) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax == 0.0f) return 0.0f;
  float best_err = INFINITY, best_scale = 0.0f;
  for (int step = -6; step <= 6; ++step) {
    const float iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / max;
    double sqq = 0, sqx = 0;
    for (int i = 0; i < n; ++i) {
      const int q = std::clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
      sqq += static_cast<double>(q) * q;
      sqx += static_cast<double>(q) * x[i];
    }
    if (sqq <= 0) continue;
    const double s = sqx / sqq;
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const int q = std::clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
      const double e = s * q - x[i];
      err += e * e;
    }
    if (err < best_err) {
      best_err = static_cast<float>(err);
      best_scale = static_cast<float>(s);
    }
  }
  return best_scale;
}

// Quantizes non-negative per-sub-block values to 0..levels with one super-block step.
float quantize_positive(const float* v, int n, int levels, std::uint8_t* out) {
  const float max = *std::max_element(v, v + n);
  if (max <= 0.0f) {
    std::fill(out, out + n, 0);
    return 0.0f;
  }
  const float step = max / static_cast<float>(levels);
  for (int i = 0; i < n; ++i)
    out[i] = static_cast<std::uint8_t>(std::clamp(nearest(v[i] / step), 0, levels));
  return step;
}

// Quantizes signed per-sub-block scales to lo..hi with the extreme one mapped to lo.
float quantize_signed(const float* v, int n, int lo, int hi, int* out) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(v[i]) > amax) {
      amax = std::fabs(v[i]);
      max = v[i];
    }
  }
  if (amax == 0.0f) {
    std::fill(out, out + n, 0);
    return 0.0f;
  }
  const float iscale = static_cast<float>(lo) / max;
  for (int i = 0; i < n; ++i) out[i] = std::clamp(nearest(iscale * v[i]), lo, hi);
  return 1.0f / iscale;
}

// Affine super-block shared by Q2_K (16 x 16, nmax 3, 4-bit scales), Q4_K and Q5_K (8 x 32,
// nmax 15 / 31, 6-bit scales): fills q[256] and the quantized scale / min per sub-block.
void quantize_affine_superblock(const float* x, int sub, int nmax, int scale_levels,
                                std::uint8_t* q, std::uint8_t* sc, std::uint8_t* mn, float* d_out,
                                float* dmin_out) {
  const int n_sub = kQKK / sub;
  float scales[16], mins[16];
  for (int s = 0; s < n_sub; ++s)
    scales[s] = fit_affine(x + s * sub, sub, nmax, &mins[s], q + s * sub);
  const float d = quantize_positive(scales, n_sub, scale_levels, sc);
  const float dmin = quantize_positive(mins, n_sub, scale_levels, mn);
  const float d_h = fp16_to_fp32(fp32_to_fp16(d));
  const float dmin_h = fp16_to_fp32(fp32_to_fp16(dmin));
  for (int s = 0; s < n_sub; ++s) {
    const float step = d_h * sc[s];
    const float m = dmin_h * mn[s];
    for (int i = 0; i < sub; ++i) {
      const int v = step > 0.0f ? nearest((x[s * sub + i] + m) / step) : 0;
      q[s * sub + i] = static_cast<std::uint8_t>(std::clamp(v, 0, nmax));
    }
  }
  *d_out = d;
  *dmin_out = dmin;
}

void pack_scale_min_k4(const std::uint8_t* sc, const std::uint8_t* mn, std::uint8_t* out) {
  std::memset(out, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      out[j] = sc[j];
      out[j + 4] = mn[j];
    } else {
      out[j + 4] = static_cast<std::uint8_t>((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
      out[j - 4] |= static_cast<std::uint8_t>((sc[j] >> 4) << 6);
      out[j] |= static_cast<std::uint8_t>((mn[j] >> 4) << 6);
    }
  }
}

}  // namespace

void quantize_row_q2_k(const float* src, void* dst, std::int64_t count) {
  auto* b = static_cast<BlockQ2_K*>(dst);
  for (std::int64_t i = 0; i < count / kQKK; ++i, src += kQKK) {
    std::uint8_t q[kQKK], sc[16], mn[16];
    float d, dmin;
    quantize_affine_superblock(src, 16, 3, 15, q, sc, mn, &d, &dmin);
    b[i].d = fp32_to_fp16(d);
    b[i].dmin = fp32_to_fp16(dmin);
    for (int s = 0; s < 16; ++s) b[i].scales[s] = static_cast<std::uint8_t>(sc[s] | (mn[s] << 4));
    std::memset(b[i].qs, 0, sizeof b[i].qs);
    for (int e = 0; e < kQKK; ++e) {
      const int half = e / 128, k = (e % 128) / 32, l = e % 32;
      b[i].qs[32 * half + l] |= static_cast<std::uint8_t>(q[e] << (2 * k));
    }
  }
}

void quantize_row_q3_k(const float* src, void* dst, std::int64_t count) {
  auto* b = static_cast<BlockQ3_K*>(dst);
  for (std::int64_t i = 0; i < count / kQKK; ++i, src += kQKK) {
    float scales[16];
    for (int s = 0; s < 16; ++s) scales[s] = fit_symmetric(src + 16 * s, 16, 4);
    int sc[16];
    const float d = quantize_signed(scales, 16, -32, 31, sc);
    b[i].d = fp32_to_fp16(d);
    const float d_h = fp16_to_fp32(b[i].d);
    std::memset(b[i].scales, 0, sizeof b[i].scales);
    std::memset(b[i].hmask, 0, sizeof b[i].hmask);
    std::memset(b[i].qs, 0, sizeof b[i].qs);
    for (int s = 0; s < 16; ++s) {
      const int v = sc[s] + 32;
      if (s < 8)
        b[i].scales[s] |= static_cast<std::uint8_t>(v & 0xF);
      else
        b[i].scales[s - 8] |= static_cast<std::uint8_t>((v & 0xF) << 4);
      b[i].scales[8 + s % 4] |= static_cast<std::uint8_t>((v >> 4) << (2 * (s / 4)));
    }
    for (int e = 0; e < kQKK; ++e) {
      const float step = d_h * static_cast<float>(sc[e / 16]);
      const int q = step != 0.0f ? std::clamp(nearest(src[e] / step), -4, 3) + 4 : 4;
      const int half = e / 128, k = (e % 128) / 32, l = e % 32;
      b[i].qs[32 * half + l] |= static_cast<std::uint8_t>((q & 3) << (2 * k));
      if (q & 4) b[i].hmask[l] |= static_cast<std::uint8_t>(1u << (4 * half + k));
    }
  }
}

void quantize_row_q4_k(const float* src, void* dst, std::int64_t count) {
  auto* b = static_cast<BlockQ4_K*>(dst);
  for (std::int64_t i = 0; i < count / kQKK; ++i, src += kQKK) {
    std::uint8_t q[kQKK], sc[8], mn[8];
    float d, dmin;
    quantize_affine_superblock(src, 32, 15, 63, q, sc, mn, &d, &dmin);
    b[i].d = fp32_to_fp16(d);
    b[i].dmin = fp32_to_fp16(dmin);
    pack_scale_min_k4(sc, mn, b[i].scales);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        b[i].qs[32 * c + l] = static_cast<std::uint8_t>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
      }
    }
  }
}

void quantize_row_q5_k(const float* src, void* dst, std::int64_t count) {
  auto* b = static_cast<BlockQ5_K*>(dst);
  for (std::int64_t i = 0; i < count / kQKK; ++i, src += kQKK) {
    std::uint8_t q[kQKK], sc[8], mn[8];
    float d, dmin;
    quantize_affine_superblock(src, 32, 31, 63, q, sc, mn, &d, &dmin);
    b[i].d = fp32_to_fp16(d);
    b[i].dmin = fp32_to_fp16(dmin);
    pack_scale_min_k4(sc, mn, b[i].scales);
    std::memset(b[i].qh, 0, sizeof b[i].qh);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const int lo = q[64 * c + l], hi = q[64 * c + 32 + l];
        b[i].qs[32 * c + l] = static_cast<std::uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
        b[i].qh[l] |=
            static_cast<std::uint8_t>(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
      }
    }
  }
}

void quantize_row_q6_k(const float* src, void* dst, std::int64_t count) {
  auto* b = static_cast<BlockQ6_K*>(dst);
  for (std::int64_t i = 0; i < count / kQKK; ++i, src += kQKK) {
    float scales[16];
    for (int s = 0; s < 16; ++s) scales[s] = fit_symmetric(src + 16 * s, 16, 32);
    int sc[16];
    const float d = quantize_signed(scales, 16, -128, 127, sc);
    b[i].d = fp32_to_fp16(d);
    const float d_h = fp16_to_fp32(b[i].d);
    std::uint8_t q[kQKK];
    for (int s = 0; s < 16; ++s) {
      b[i].scales[s] = static_cast<std::int8_t>(sc[s]);
      const float step = d_h * static_cast<float>(sc[s]);
      for (int l = 0; l < 16; ++l) {
        const int v = step != 0.0f ? std::clamp(nearest(src[16 * s + l] / step), -32, 31) : 0;
        q[16 * s + l] = static_cast<std::uint8_t>(v + 32);
      }
    }
    for (int half = 0; half < 2; ++half) {
      const std::uint8_t* qq = q + 128 * half;
      for (int l = 0; l < 32; ++l) {
        b[i].ql[64 * half + l] =
            static_cast<std::uint8_t>((qq[l] & 0xF) | ((qq[l + 64] & 0xF) << 4));
        b[i].ql[64 * half + l + 32] =
            static_cast<std::uint8_t>((qq[l + 32] & 0xF) | ((qq[l + 96] & 0xF) << 4));
        b[i].qh[32 * half + l] =
            static_cast<std::uint8_t>((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) |
                                      ((qq[l + 64] >> 4) << 4) | ((qq[l + 96] >> 4) << 6));
      }
    }
  }
}

void quantize_row_q8_k(const float* src, void* dst, std::int64_t count) {
  auto* b = static_cast<BlockQ8_K*>(dst);
  for (std::int64_t i = 0; i < count / kQKK; ++i, src += kQKK) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQKK; ++j) {
      if (std::fabs(src[j]) > amax) {
        amax = std::fabs(src[j]);
        max = src[j];
      }
    }
    if (amax == 0.0f) {
      std::memset(&b[i], 0, sizeof b[i]);
      continue;
    }
    // As ggml: the extreme value maps to -127 (so the scale may be negative).
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQKK; ++j)
      b[i].qs[j] = static_cast<std::int8_t>(std::min(127, nearest(iscale * src[j])));
    for (int g = 0; g < kQKK / 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += b[i].qs[16 * g + j];
      b[i].bsums[g] = static_cast<std::int16_t>(sum);
    }
    b[i].d = 1.0f / iscale;
  }
}

}  // namespace herd::tensor
