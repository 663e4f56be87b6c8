#include "kernels/compute_peak.h"

#include <gtest/gtest.h>

#include "util/cpu_features.h"

namespace herd::kernels {
namespace {

#if defined(__x86_64__) || defined(_M_X64)
// Each loop adds a known product per lane per iteration to accumulators that start at their
// chain index: the checksum proves every instruction ran and the count is what was executed.
TEST(ComputePeak, Avx512LoopRunsEveryMultiplyAdd) {
  if (!isa_supported(Isa::kAvx512)) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  double macs = 0;
  // 12 chains x 16 lanes, each lane gaining 4 * (3 * 1) per iteration.
  EXPECT_EQ(avx512::int8_peak_loop(10, &macs), 16 * (66 + 12 * 12 * 10));
  EXPECT_EQ(macs, 10.0 * 12 * 64);
}

TEST(ComputePeak, Avx2LoopRunsEveryMultiplyAdd) {
  if (!isa_supported(Isa::kAvx2)) GTEST_SKIP() << "this CPU has no AVX2";
  double macs = 0;
  // 8 chains x 8 lanes, each lane gaining 2 * (3 + 3) per iteration.
  EXPECT_EQ(avx2::int8_peak_loop(10, &macs), 8 * (28 + 8 * 12 * 10));
  EXPECT_EQ(macs, 10.0 * 8 * 32);
}
#endif

TEST(ComputePeak, MeasuresARateWhereTheIsaHasALoop) {
  ThreadPool pool(2);
  const ComputePeak peak = measure_int8_peak(pool, 0.02);
  if (active_isa() == Isa::kAvx512 || active_isa() == Isa::kAvx2) {
    EXPECT_GT(peak.int8_gops, 0.0);
    EXPECT_STRNE(peak.instruction, "none");
  } else {
    EXPECT_EQ(peak.int8_gops, 0.0);
  }
}

TEST(ComputePeak, ScalarIsaReportsNoPeak) {
  set_isa_override(Isa::kScalar);
  ThreadPool pool(1);
  const ComputePeak peak = measure_int8_peak(pool, 0.01);
  clear_isa_override();
  EXPECT_EQ(peak.int8_gops, 0.0);
  EXPECT_STREQ(peak.instruction, "none");
}

}  // namespace
}  // namespace herd::kernels
