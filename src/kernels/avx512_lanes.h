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

}  // namespace herd::kernels::avx512
