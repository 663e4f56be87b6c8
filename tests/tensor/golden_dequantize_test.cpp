// Dequantizing llama.cpp's quantizations of the golden model must give back its f32 weights
// within each type's quantization error (golden/README.md: every llama-* file holds the same
// random weights). This pins our block layouts to ggml's: a misplaced bit or scale gives errors
// of the order of the weights themselves (relative error ~1), far above any bound below.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "gguf/reader.h"
#include "support/test_data.h"
#include "tensor/fp16.h"
#include "tensor/type.h"

namespace herd::tensor {
namespace {

std::vector<float> to_float(const gguf::File& file, const gguf::TensorInfo& info) {
  std::vector<float> out(static_cast<std::size_t>(info.n_elements));
  dequantize(info.type, file.tensor_data(info), out.data(), info.n_elements);
  return out;
}

// Relative RMS error bound per type, for these weights (random, per-row scales).
// They are the round-to-nearest estimates of quantize_round_trip_test.cpp (step / sqrt(12)
// relative to the data's rms) with ~40% headroom; llama.cpp's scale search does at least as
// well as round-to-nearest, so these also hold for its files.
double bound(Type type) {
  switch (type) {
    case Type::kQ8_0:
      return 0.008;
    case Type::kQ6_K:
      return 0.03;
    case Type::kQ5_0:
    case Type::kQ5_1:
    case Type::kQ5_K:
      return 0.055;
    case Type::kQ4_0:
    case Type::kQ4_1:
    case Type::kQ4_K:
      return 0.11;
    case Type::kQ3_K:
      return 0.20;
    case Type::kQ2_K:
      return 0.38;
    default:
      return 0.0;
  }
}

class GoldenDequantize : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenDequantize, EveryQuantizedTensorApproximatesF32WithinTypeError) {
  HERD_REQUIRE_SHARED(ref_path, "golden/llama-f32.gguf");
  HERD_REQUIRE_SHARED(path, "golden/" + GetParam() + ".gguf");
  const gguf::File ref = gguf::File::open(ref_path.string());
  const gguf::File file = gguf::File::open(path.string());
  std::map<std::string, double> worst;
  int checked = 0;
  for (const gguf::TensorInfo& info : file.tensors()) {
    if (info.type == Type::kF32) continue;
    const gguf::TensorInfo* ref_info = ref.find_tensor(info.name);
    ASSERT_NE(ref_info, nullptr) << info.name;
    ASSERT_EQ(ref_info->n_elements, info.n_elements) << info.name;
    const auto expected = to_float(ref, *ref_info);
    const auto got = to_float(file, info);
    double err = 0, norm = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      err += (got[i] - expected[i]) * (got[i] - expected[i]);
      norm += expected[i] * expected[i];
    }
    const double rel = std::sqrt(err / norm);
    ASSERT_GT(bound(info.type), 0.0) << "no bound for " << type_name(info.type);
    EXPECT_LT(rel, bound(info.type)) << info.name << " " << type_name(info.type);
    worst[std::string(type_name(info.type))] =
        std::max(worst[std::string(type_name(info.type))], rel);
    ++checked;
  }
  EXPECT_GT(checked, 10);
  for (const auto& [type, rel] : worst) {
    std::printf("%s: %s worst relative rms error %.4f\n", GetParam().c_str(), type.c_str(), rel);
  }
}

INSTANTIATE_TEST_SUITE_P(Files, GoldenDequantize,
                         ::testing::Values("llama-q8_0", "llama-q4_0", "llama-q4_k_m",
                                           "llama-pure-q4_1", "llama-pure-q5_0", "llama-pure-q5_1",
                                           "llama-pure-q2_k", "llama-pure-q3_k", "llama-pure-q4_k",
                                           "llama-pure-q5_k", "llama-pure-q6_k"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

// f16 / bf16 files must hold exactly the f32 weights rounded to nearest even.
TEST(GoldenDequantize, HalfAndBFloatFilesAreRoundedF32) {
  HERD_REQUIRE_SHARED(ref_path, "golden/llama-f32.gguf");
  const gguf::File ref = gguf::File::open(ref_path.string());
  for (const char* name : {"golden/llama-f16.gguf", "golden/llama-bf16.gguf"}) {
    HERD_REQUIRE_SHARED(path, name);
    const gguf::File file = gguf::File::open(path.string());
    int checked = 0;
    for (const gguf::TensorInfo& info : file.tensors()) {
      if (info.type == Type::kF32) continue;
      const auto expected = to_float(ref, *ref.find_tensor(info.name));
      const auto got = to_float(file, info);
      std::vector<std::uint16_t> rounded(expected.size());
      quantize(info.type, expected.data(), rounded.data(), info.n_elements);
      std::vector<float> want(expected.size());
      dequantize(info.type, rounded.data(), want.data(), info.n_elements);
      for (std::size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(fp32_to_bits(got[i]), fp32_to_bits(want[i])) << info.name << " [" << i << "]";
      }
      ++checked;
    }
    EXPECT_GT(checked, 10) << name;
  }
}

}  // namespace
}  // namespace herd::tensor
