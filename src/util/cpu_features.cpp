#include "util/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif
#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif

namespace herd {
namespace {

#if defined(__x86_64__)
unsigned long long xgetbv0() {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  bool osxsave = c & (1u << 27);
  bool avx = c & (1u << 28);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
  bool ymm_ok = (xcr0 & 0x6) == 0x6;
  bool zmm_ok = (xcr0 & 0xe6) == 0xe6;
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = avx && ymm_ok && (b & (1u << 5));
    f.avx512f = zmm_ok && (b & (1u << 16));
    f.avx512dq = zmm_ok && (b & (1u << 17));
    f.avx512bw = zmm_ok && (b & (1u << 30));
    f.avx512vl = zmm_ok && (b & (1u << 31));
    f.avx512vnni = zmm_ok && (c & (1u << 11));
    __cpuid_count(7, 1, a, b, c, d);
    f.avx512bf16 = zmm_ok && (a & (1u << 5));
  }
  f.fma = f.fma && ymm_ok;
  f.f16c = f.f16c && ymm_ok;
#elif defined(__aarch64__)
  f.neon = true;  // Advanced SIMD is mandatory in AArch64
#if defined(__linux__)
  // The kernel reports the optional ARMv8.2 dot-product instructions (sdot/udot) in AT_HWCAP
  // (asm/hwcap.h: HWCAP_ASIMDDP = 1 << 20); the binary itself is built for plain ARMv8.0.
  constexpr unsigned long kHwcapAsimdDotProd = 1ul << 20;
  f.neon_dotprod = (getauxval(AT_HWCAP) & kHwcapAsimdDotProd) != 0;
#elif defined(__APPLE__) || defined(__ARM_FEATURE_DOTPROD)
  f.neon_dotprod = true;  // every Apple silicon core has it
#endif
#endif
  return f;
}

Isa detect_best() {
  const CpuFeatures& f = cpu_features();
#if defined(__x86_64__)
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni && f.avx512bf16 &&
      f.fma && f.f16c)
    return Isa::kAvx512;
  if (f.avx2 && f.fma && f.f16c) return Isa::kAvx2;
#elif defined(__aarch64__)
  if (f.neon) return Isa::kNeon;
#endif
  return Isa::kScalar;
}

Isa cap_from_env(Isa best) {
  const char* env = std::getenv("HERD_ISA");
  if (!env) return best;
  Isa wanted = best;
  if (!std::strcmp(env, "scalar"))
    wanted = Isa::kScalar;
  else if (!std::strcmp(env, "avx2"))
    wanted = Isa::kAvx2;
  else if (!std::strcmp(env, "avx512"))
    wanted = Isa::kAvx512;
  else if (!std::strcmp(env, "neon"))
    wanted = Isa::kNeon;
  return isa_supported(wanted) ? wanted : best;
}

std::atomic<int> g_override{-1};

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::kScalar:
      return true;
#if defined(__x86_64__)
    case Isa::kAvx2:
      return f.avx2 && f.fma && f.f16c;
    case Isa::kAvx512:
      return f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni && f.avx512bf16 &&
             f.fma && f.f16c;
#endif
#if defined(__aarch64__)
    case Isa::kNeon:
      return f.neon;
#endif
    default:
      return false;
  }
}

Isa active_isa() {
  static const Isa chosen = cap_from_env(detect_best());
  int o = g_override.load(std::memory_order_relaxed);
  return o >= 0 ? static_cast<Isa>(o) : chosen;
}

void set_isa_override(Isa isa) {
  g_override.store(static_cast<int>(isa));
}
void clear_isa_override() {
  g_override.store(-1);
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
    case Isa::kNeon:
      return "neon";
  }
  return "?";
}

std::string cpu_feature_string() {
  const CpuFeatures& f = cpu_features();
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.f16c, "f16c");
  add(f.avx512f, "avx512f");
  add(f.avx512bw, "avx512bw");
  add(f.avx512vnni, "avx512vnni");
  add(f.avx512bf16, "avx512bf16");
  add(f.neon, "neon");
  add(f.neon_dotprod, "dotprod");
  return s.empty() ? "none" : s;
}

std::string cpu_model_name() {
#if defined(__APPLE__)
  char buf[256] = {};
  std::size_t size = sizeof buf - 1;
  if (sysctlbyname("machdep.cpu.brand_string", buf, &size, nullptr, 0) == 0) return buf;
  return "";
#else
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    // x86: "model name"; some ARM kernels: "Model" or "Hardware".
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    if (key != "model name" && key != "Model" && key != "Hardware") continue;
    std::string value = line.substr(colon + 1);
    const auto first = value.find_first_not_of(" \t");
    return first == std::string::npos ? "" : value.substr(first);
  }
  return "";
#endif
}

}  // namespace herd
