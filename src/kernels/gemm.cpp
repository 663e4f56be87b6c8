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

void gemm(std::span<const Product> products, const float* x, std::int64_t n_tokens,
          std::int64_t ldx, ThreadPool& pool) {
  HERD_CHECK(!products.empty() && gemm_supported(products[0].w->type));
  for (const Product& p : products) {
    HERD_CHECK(p.w->type == products[0].w->type && p.w->cols == products[0].w->cols);
  }
#if defined(__x86_64__) || defined(_M_X64)
  gemm_avx512(products, x, n_tokens, ldx, pool);
#else
  (void)x, (void)n_tokens, (void)ldx, (void)pool;
#endif
}

}  // namespace herd::kernels
