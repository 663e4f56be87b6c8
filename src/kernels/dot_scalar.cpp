// Scalar reference dot products for every supported weight type (formulas as ggml's
// ggml_vec_dot_*_q8_* reference paths): integer sums per block, scaled in float.
// The vector kernels must reproduce these integers exactly.
#include <algorithm>
#include <cstring>

#include "kernels/dot.h"
#include "kernels/quantize_activations.h"
#include "tensor/blocks.h"
#include "tensor/fp16.h"

namespace herd::kernels {
namespace {

using namespace herd::tensor;  // block layouts and half conversions

// --- 32-wide types against BlockQ8A --------------------------------------------------------

// Unsigned quants of a 32-block in element order (the offset is applied by the caller).
void unpack_nibbles(const std::uint8_t* qs, std::uint32_t qh, bool five_bit, std::uint8_t* u) {
  for (int j = 0; j < 16; ++j) {
    u[j] = qs[j] & 0xF;
    u[j + 16] = qs[j] >> 4;
    if (five_bit) {
      u[j] |= static_cast<std::uint8_t>(((qh >> j) & 1) << 4);
      u[j + 16] |= static_cast<std::uint8_t>(((qh >> (j + 16)) & 1) << 4);
    }
  }
}

int dot32(const std::uint8_t* u, const std::int8_t* x) {
  int s = 0;
  for (int j = 0; j < 32; ++j) s += u[j] * x[j];
  return s;
}

std::uint32_t load_u32(const std::uint8_t* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

float dot_q4_0(std::int64_t n, const void* w, const void* xv) {
  const auto* b = static_cast<const BlockQ4_0*>(w);
  const auto* x = static_cast<const BlockQ8A*>(xv);
  float sum = 0.0f;
  std::uint8_t u[32];
  for (std::int64_t i = 0; i < n / 32; ++i) {
    unpack_nibbles(b[i].qs, 0, false, u);
    sum += fp16_to_fp32(b[i].d) * x[i].d * static_cast<float>(dot32(u, x[i].qs) - 8 * x[i].sum);
  }
  return sum;
}

float dot_q4_1(std::int64_t n, const void* w, const void* xv) {
  const auto* b = static_cast<const BlockQ4_1*>(w);
  const auto* x = static_cast<const BlockQ8A*>(xv);
  float sum = 0.0f;
  std::uint8_t u[32];
  for (std::int64_t i = 0; i < n / 32; ++i) {
    unpack_nibbles(b[i].qs, 0, false, u);
    sum += fp16_to_fp32(b[i].d) * x[i].d * static_cast<float>(dot32(u, x[i].qs)) +
           fp16_to_fp32(b[i].m) * x[i].d * static_cast<float>(x[i].sum);
  }
  return sum;
}

float dot_q5_0(std::int64_t n, const void* w, const void* xv) {
  const auto* b = static_cast<const BlockQ5_0*>(w);
  const auto* x = static_cast<const BlockQ8A*>(xv);
  float sum = 0.0f;
  std::uint8_t u[32];
  for (std::int64_t i = 0; i < n / 32; ++i) {
    unpack_nibbles(b[i].qs, load_u32(b[i].qh), true, u);
    sum += fp16_to_fp32(b[i].d) * x[i].d * static_cast<float>(dot32(u, x[i].qs) - 16 * x[i].sum);
  }
  return sum;
}

float dot_q5_1(std::int64_t n, const void* w, const void* xv) {
  const auto* b = static_cast<const BlockQ5_1*>(w);
  const auto* x = static_cast<const BlockQ8A*>(xv);
  float sum = 0.0f;
  std::uint8_t u[32];
  for (std::int64_t i = 0; i < n / 32; ++i) {
    unpack_nibbles(b[i].qs, load_u32(b[i].qh), true, u);
    sum += fp16_to_fp32(b[i].d) * x[i].d * static_cast<float>(dot32(u, x[i].qs)) +
           fp16_to_fp32(b[i].m) * x[i].d * static_cast<float>(x[i].sum);
  }
  return sum;
}

float dot_q8_0(std::int64_t n, const void* w, const void* xv) {
  const auto* b = static_cast<const BlockQ8_0*>(w);
  const auto* x = static_cast<const BlockQ8A*>(xv);
  float sum = 0.0f;
  for (std::int64_t i = 0; i < n / 32; ++i) {
    int s = 0;
    for (int j = 0; j < 32; ++j) s += b[i].qs[j] * x[i].qs[j];
    sum += fp16_to_fp32(b[i].d) * x[i].d * static_cast<float>(s);
  }
  return sum;
}

// --- K-quants against BlockQ8_K ------------------------------------------------------------

// Sum over sub-blocks of `sub` elements: scale[s] * (sum u * x - offset * sum x).
int scaled_subblock_sum(const std::uint8_t* u, const BlockQ8_K& x, int sub, const int* scale,
                        int offset) {
  int total = 0;
  for (int s = 0; s < kQKK / sub; ++s) {
    int dot = 0, xsum = 0;
    for (int j = s * sub; j < (s + 1) * sub; ++j) dot += u[j] * x.qs[j];
    for (int g = s * sub / 16; g < (s + 1) * sub / 16; ++g) xsum += x.bsums[g];
    total += scale[s] * (dot - offset * xsum);
  }
  return total;
}

// Low 2-bit fields as laid out in Q2_K / Q3_K qs (tensor/blocks.h), in element order.
void unpack_2bit(const std::uint8_t* qs, std::uint8_t* u) {
  for (int e = 0; e < kQKK; ++e) {
    const int half = e / 128, k = (e % 128) / 32, l = e % 32;
    u[e] = (qs[32 * half + l] >> (2 * k)) & 3;
  }
}

float dot_q2_k(std::int64_t n, const void* w, const void* xv) {
  const auto* b = static_cast<const BlockQ2_K*>(w);
  const auto* x = static_cast<const BlockQ8_K*>(xv);
  float sum = 0.0f;
  std::uint8_t u[kQKK];
  for (std::int64_t i = 0; i < n / kQKK; ++i) {
    unpack_2bit(b[i].qs, u);
    int sc[16], mins = 0;
    for (int s = 0; s < 16; ++s) {
      sc[s] = b[i].scales[s] & 0xF;
      mins += (b[i].scales[s] >> 4) * x[i].bsums[s];
    }
    const int isum = scaled_subblock_sum(u, x[i], 16, sc, 0);
    sum += x[i].d * fp16_to_fp32(b[i].d) * static_cast<float>(isum) -
           x[i].d * fp16_to_fp32(b[i].dmin) * static_cast<float>(mins);
  }
  return sum;
}

float dot_q3_k(std::int64_t n, const void* w, const void* xv) {
  const auto* b = static_cast<const BlockQ3_K*>(w);
  const auto* x = static_cast<const BlockQ8_K*>(xv);
  float sum = 0.0f;
  std::uint8_t u[kQKK];
  for (std::int64_t i = 0; i < n / kQKK; ++i) {
    unpack_2bit(b[i].qs, u);
    for (int e = 0; e < kQKK; ++e) {
      const int half = e / 128, k = (e % 128) / 32, l = e % 32;
      if (b[i].hmask[l] & (1u << (4 * half + k))) u[e] |= 4;
    }
    std::int8_t scales[16];
    unpack_q3_k_scales(b[i].scales, scales);
    int sc[16];
    for (int s = 0; s < 16; ++s) sc[s] = scales[s];
    const int isum = scaled_subblock_sum(u, x[i], 16, sc, 4);
    sum += x[i].d * fp16_to_fp32(b[i].d) * static_cast<float>(isum);
  }
  return sum;
}

// Q4_K / Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins.
template <bool kFiveBit, typename Block>
float dot_q45_k(std::int64_t n, const void* w, const void* xv) {
  const auto* b = static_cast<const Block*>(w);
  const auto* x = static_cast<const BlockQ8_K*>(xv);
  float sum = 0.0f;
  std::uint8_t u[kQKK];
  for (std::int64_t i = 0; i < n / kQKK; ++i) {
    for (int e = 0; e < kQKK; ++e) {
      const int c = e / 64, l = e % 32;
      const std::uint8_t byte = b[i].qs[32 * c + l];
      u[e] = (e % 64) < 32 ? (byte & 0xF) : (byte >> 4);
      if constexpr (kFiveBit)
        u[e] |= static_cast<std::uint8_t>(((b[i].qh[l] >> (e / 32)) & 1) << 4);
    }
    int sc[8], mins = 0;
    for (int s = 0; s < 8; ++s) {
      std::uint8_t scale, m;
      get_scale_min_k4(s, b[i].scales, &scale, &m);
      sc[s] = scale;
      mins += m * (x[i].bsums[2 * s] + x[i].bsums[2 * s + 1]);
    }
    const int isum = scaled_subblock_sum(u, x[i], 32, sc, 0);
    sum += x[i].d * fp16_to_fp32(b[i].d) * static_cast<float>(isum) -
           x[i].d * fp16_to_fp32(b[i].dmin) * static_cast<float>(mins);
  }
  return sum;
}

float dot_q6_k(std::int64_t n, const void* w, const void* xv) {
  const auto* b = static_cast<const BlockQ6_K*>(w);
  const auto* x = static_cast<const BlockQ8_K*>(xv);
  float sum = 0.0f;
  std::uint8_t u[kQKK];
  for (std::int64_t i = 0; i < n / kQKK; ++i) {
    for (int e = 0; e < kQKK; ++e) {
      const int half = e / 128, k = (e % 128) / 32, l = e % 32;
      const std::uint8_t low = b[i].ql[64 * half + l + 32 * (k & 1)];
      const int nib = k < 2 ? (low & 0xF) : (low >> 4);
      u[e] = static_cast<std::uint8_t>(nib | (((b[i].qh[32 * half + l] >> (2 * k)) & 3) << 4));
    }
    int sc[16];
    for (int s = 0; s < 16; ++s) sc[s] = b[i].scales[s];
    const int isum = scaled_subblock_sum(u, x[i], 16, sc, 32);
    sum += x[i].d * fp16_to_fp32(b[i].d) * static_cast<float>(isum);
  }
  return sum;
}

// --- Float weights against float activations -----------------------------------------------

// By memcpy: a row need not be aligned to its element (a GGUF row is, but a shard or test buffer
// may not be), and a misaligned typed load is undefined behaviour. Compilers emit one load.
template <class T>
T load_element(const void* w, std::int64_t i) {
  T v;
  std::memcpy(&v, static_cast<const char*>(w) + i * static_cast<std::int64_t>(sizeof(T)), sizeof v);
  return v;
}

template <float (*kLoad)(const void*, std::int64_t)>
float dot_float(std::int64_t n, const void* w, const void* xv) {
  auto x = [xv](std::int64_t i) { return load_element<float>(xv, i); };
  float acc[8] = {};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += kLoad(w, i + k) * x(i + k);
  }
  float sum = 0.0f;
  for (; i < n; ++i) sum += kLoad(w, i) * x(i);
  for (float a : acc) sum += a;
  return sum;
}

float load_f32(const void* w, std::int64_t i) {
  return load_element<float>(w, i);
}
float load_f16(const void* w, std::int64_t i) {
  return fp16_to_fp32(load_element<std::uint16_t>(w, i));
}
float load_bf16(const void* w, std::int64_t i) {
  return bf16_to_fp32(load_element<std::uint16_t>(w, i));
}

// The scalar path takes one token at a time: it is the reference, not the fast path.
template <float (*kDot)(std::int64_t, const void*, const void*)>
void tile(std::int64_t n, const void* w_row, const void* x, std::size_t x_stride, int nc, float* y,
          std::int64_t ldy) {
  for (int c = 0; c < nc; ++c) {
    y[c * ldy] = kDot(n, w_row, static_cast<const std::uint8_t*>(x) + c * x_stride);
  }
}

KernelTable make_table() {
  KernelTable t;
  t.isa = Isa::kScalar;
  auto set = [&](Type type, ActivationFormat act, DotTileFn fn) {
    t.by_type[static_cast<std::size_t>(type)] = DotKernel{act, fn};
  };
  set(Type::kF32, ActivationFormat::kF32, tile<dot_float<load_f32>>);
  set(Type::kF16, ActivationFormat::kF32, tile<dot_float<load_f16>>);
  set(Type::kBF16, ActivationFormat::kF32, tile<dot_float<load_bf16>>);
  set(Type::kQ4_0, ActivationFormat::kQ8A, tile<dot_q4_0>);
  set(Type::kQ4_1, ActivationFormat::kQ8A, tile<dot_q4_1>);
  set(Type::kQ5_0, ActivationFormat::kQ8A, tile<dot_q5_0>);
  set(Type::kQ5_1, ActivationFormat::kQ8A, tile<dot_q5_1>);
  set(Type::kQ8_0, ActivationFormat::kQ8A, tile<dot_q8_0>);
  set(Type::kQ2_K, ActivationFormat::kQ8K, tile<dot_q2_k>);
  set(Type::kQ3_K, ActivationFormat::kQ8K, tile<dot_q3_k>);
  set(Type::kQ4_K, ActivationFormat::kQ8K, tile<dot_q45_k<false, BlockQ4_K>>);
  set(Type::kQ5_K, ActivationFormat::kQ8K, tile<dot_q45_k<true, BlockQ5_K>>);
  set(Type::kQ6_K, ActivationFormat::kQ8K, tile<dot_q6_k>);
  t.quantize_q8a = quantize_row_q8a_scalar;
  t.quantize_q8k = quantize_row_q8k_scalar;
  return t;
}

}  // namespace

const KernelTable& scalar_kernels() {
  static const KernelTable table = make_table();
  return table;
}

std::size_t activation_row_bytes(ActivationFormat format, std::int64_t n) {
  switch (format) {
    case ActivationFormat::kF32:
      return static_cast<std::size_t>(n) * sizeof(float);
    case ActivationFormat::kQ8A:
      return static_cast<std::size_t>(n / 32) * sizeof(BlockQ8A);
    case ActivationFormat::kQ8K:
      return static_cast<std::size_t>(n / kQKK) * sizeof(BlockQ8_K);
    case ActivationFormat::kQ8X: {
      const std::int64_t blocks = n / 32, groups = blocks / BlockQ8X::kBlocks;
      return static_cast<std::size_t>(groups) * sizeof(BlockQ8X) +
             static_cast<std::size_t>(blocks - groups * BlockQ8X::kBlocks) * sizeof(BlockQ8A);
    }
  }
  return 0;
}

const KernelTable& kernels_for(Isa isa) {
#if defined(__x86_64__) || defined(_M_X64)
  if (isa == Isa::kAvx512) return avx512_kernels();
  if (isa == Isa::kAvx2) return avx2_kernels();
#endif
#if defined(__aarch64__)
  if (isa == Isa::kNeon && cpu_features().neon_dotprod) return neon_kernels();
#endif
  return scalar_kernels();
}

}  // namespace herd::kernels
