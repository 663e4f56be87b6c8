// Maps a small run-time count to a compile-time one. Kernels are templates on their tile width or
// head count so that one accumulator per token or head lives in a register; this is the one place
// that turns the run-time number into that template argument.
#pragma once

#include <type_traits>

namespace herd::kernels {

// Calls fn(std::integral_constant<int, N>{}) with N = n for 1 <= n <= Max (Max for anything
// larger, 1 for anything smaller).
template <int Max, int N = 1, class Fn>
inline void with_static_count(int n, Fn&& fn) {
  if constexpr (N == Max) {
    fn(std::integral_constant<int, N>{});
  } else {
    if (n <= N) return fn(std::integral_constant<int, N>{});
    with_static_count<Max, N + 1>(n, fn);
  }
}

}  // namespace herd::kernels
