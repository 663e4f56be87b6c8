// Small helpers of the 512-bit kernels (for the *_avx512.cpp files of kernels/ only).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace herd::kernels::avx512 {

inline float half_to_float(std::uint16_t h) {
  return _cvtsh_ss(h);
}

// A permute / shuffle control vector: lane i (of 64 / sizeof(Lane) lanes) holds f(i).
template <class Lane, class F>
inline __m512i lane_index(F f) {
  constexpr int kLanes = 64 / sizeof(Lane);
  alignas(64) Lane idx[kLanes];
  for (int i = 0; i < kLanes; ++i) idx[i] = static_cast<Lane>(f(i));
  return _mm512_load_si512(idx);
}

// Word (16-bit) indices for vpermw / vpermt2w, byte indices for vpshufb.
template <class F>
inline __m512i word_index(F f) {
  return lane_index<std::int16_t>(f);
}
template <class F>
inline __m512i byte_index(F f) {
  return lane_index<std::int8_t>(f);
}

// One 32-float block rounded as quantize_row_q8a_scalar does (x * 127 / amax, nearest even; the
// scale rounded to half precision): the activations of the 512-bit Q4_0 / Q8_0 decode kernels
// (BlockQ8X) and of the blocked GEMM.
struct QuantizedBlock {
  __m128i lo, hi;  // int8 elements 0..15, 16..31
  std::int32_t sum;
  float d;
};

inline QuantizedBlock quantize_block(const float* x) {
  const __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
  const __m512 id = _mm512_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m512i qa = _mm512_cvt_roundps_epi32(_mm512_mul_ps(a, id), kRound);
  const __m512i qb = _mm512_cvt_roundps_epi32(_mm512_mul_ps(b, id), kRound);
  return {_mm512_cvtsepi32_epi8(qa), _mm512_cvtsepi32_epi8(qb),
          _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb)),
          _cvtsh_ss(_cvtss_sh(amax / 127.0f, _MM_FROUND_TO_NEAREST_INT))};
}

}  // namespace herd::kernels::avx512
