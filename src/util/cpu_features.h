// What the CPU can do, detected once at run time. Kernels pick their instruction set from
// here; HERD_ISA=scalar|avx2|avx512|neon forces a lower one (tests and benchmarks use it).
#pragma once

#include <string>

namespace herd {

enum class Isa { kScalar, kAvx2, kAvx512, kNeon };

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512vnni = false;
  bool avx512bf16 = false;
  bool neon = false;
  bool neon_dotprod = false;
};

const CpuFeatures& cpu_features();

// The best ISA both compiled in and supported, capped by HERD_ISA when set.
Isa active_isa();
// Override for tests: kernels consult active_isa() on each top-level call.
void set_isa_override(Isa isa);
void clear_isa_override();
bool isa_supported(Isa isa);

const char* isa_name(Isa isa);
// e.g. "avx2 fma f16c avx512f avx512bw avx512vnni avx512bf16"
std::string cpu_feature_string();
// The processor's marketing name, e.g. "AMD EPYC 9R14" (Linux: /proc/cpuinfo's "model name";
// macOS: machdep.cpu.brand_string); "" where the system does not say.
std::string cpu_model_name();

}  // namespace herd
