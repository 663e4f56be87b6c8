// The x86 kernels built for AVX-512 (VNNI, BW, VL): the same source as dot_avx2.cpp with the
// integer dot steps fused by vpdpbusd / vpdpwssd.
#include "kernels/dot_x86_impl.h"

namespace herd::kernels {

const KernelTable& avx512_kernels() {
  static const KernelTable table = make_x86_table(Isa::kAvx512);
  return table;
}

}  // namespace herd::kernels
