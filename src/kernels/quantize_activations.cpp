#include "kernels/quantize_activations.h"

#include <algorithm>
#include <cmath>

#include "kernels/dot.h"
#include "tensor/blocks.h"
#include "tensor/fp16.h"

namespace herd::kernels {

void quantize_row_q8a_scalar(const float* x, void* out, std::int64_t n) {
  auto* b = static_cast<BlockQ8A*>(out);
  for (std::int64_t i = 0; i < n / 32; ++i, x += 32) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      const int q = static_cast<int>(std::nearbyint(x[j] * id));
      b[i].qs[j] = static_cast<std::int8_t>(q);
      sum += q;
    }
    // ggml's Q8_0 keeps the scale in half precision; doing the same keeps results close to it.
    b[i].d = tensor::fp16_to_fp32(tensor::fp32_to_fp16(amax / 127.0f));
    b[i].sum = sum;
  }
}

void quantize_row_q8k_scalar(const float* x, void* out, std::int64_t n) {
  auto* b = static_cast<tensor::BlockQ8_K*>(out);
  for (std::int64_t i = 0; i < n / tensor::kQKK; ++i, x += tensor::kQKK) {
    float amax = 0.0f;
    for (int j = 0; j < tensor::kQKK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float iscale = amax != 0.0f ? 127.0f / amax : 0.0f;
    for (int j = 0; j < tensor::kQKK; ++j) {
      b[i].qs[j] = static_cast<std::int8_t>(std::nearbyint(x[j] * iscale));
    }
    for (int g = 0; g < tensor::kQKK / 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += b[i].qs[16 * g + j];
      b[i].bsums[g] = static_cast<std::int16_t>(sum);
    }
    b[i].d = amax != 0.0f ? 1.0f / iscale : 0.0f;
  }
}

}  // namespace herd::kernels
