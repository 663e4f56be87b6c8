// Chooses the blocked prefill kernel for the active instruction set (see gemm.h).
#include "kernels/gemm.h"

#include "util/cpu_features.h"
#include "util/error.h"

namespace herd::kernels {

bool gemm_supported(tensor::Type type) {
#if defined(__x86_64__) || defined(_M_X64)
  if (active_isa() == Isa::kAvx512) return gemm_avx512_supports(type);
#endif
  (void)type;
  return false;
}

void gemm(const Matrix& w, const float* x, std::int64_t n_tokens, std::int64_t ldx, float* y,
          std::int64_t ldy, ThreadPool& pool) {
  HERD_CHECK(gemm_supported(w.type));
#if defined(__x86_64__) || defined(_M_X64)
  gemm_avx512(w, x, n_tokens, ldx, y, ldy, pool);
#else
  (void)x, (void)n_tokens, (void)ldx, (void)y, (void)ldy, (void)pool;
#endif
}

}  // namespace herd::kernels
