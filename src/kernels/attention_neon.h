// The AArch64 NEON loops of the attention kernel (attention_neon.cpp), internal to kernels/.
// The dispatcher (attention_loops in attention.cpp) hands them out for Isa::kNeon; tests also
// compare them with the scalar loops one by one.
#pragma once

#include "kernels/attention_isa.h"

namespace herd::kernels {

#if defined(__aarch64__)
namespace neon {
// scores, accumulate, scores_blocked, max, exp_sum, to_f16; no wide prefill loops (nullptr).
const AttentionLoops& attention_loops();
}  // namespace neon
#endif

}  // namespace herd::kernels
