// The x86 kernels built for AVX2 + FMA + F16C (flags from cmake/herd.cmake).
#include "kernels/dot_x86_impl.h"

namespace herd::kernels {

const KernelTable& avx2_kernels() {
  static const KernelTable table = make_x86_table(Isa::kAvx2);
  return table;
}

}  // namespace herd::kernels
