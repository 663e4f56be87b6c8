// The x86 kernels built for AVX-512 (VNNI, BW, VL): the same source as dot_avx2.cpp with the
// integer dot steps fused by vpdpbusd / vpdpwssd; Q4_0, Q8_0, Q4_K, Q5_K and Q6_K use the
// 512-bit kernels of dot_q32_avx512.cpp and dot_k_avx512.cpp instead.
#include "kernels/dot_x86_impl.h"

namespace herd::kernels {

const KernelTable& avx512_kernels() {
  static const KernelTable table = [] {
    KernelTable t = make_x86_table(Isa::kAvx512);
    add_avx512_q32_kernels(t);
    add_avx512_k_kernels(t);
    return t;
  }();
  return table;
}

}  // namespace herd::kernels
