// Per-ISA inner loops of the ops (internal to kernels/): chosen once per top-level call.
#pragma once

namespace herd::kernels {

struct OpsLoops {
  float (*dot)(const float* a, const float* b, int n);
  void (*axpy)(float a, const float* x, float* y, int n);  // y += a * x
};

// The loops for the active ISA (util/cpu_features.h; HERD_ISA can force scalar).
const OpsLoops& ops_loops();

#if defined(__x86_64__) || defined(_M_X64)
namespace avx2 {
float dot(const float* a, const float* b, int n);
void axpy(float a, const float* x, float* y, int n);
}  // namespace avx2
#endif

}  // namespace herd::kernels
