#include <gtest/gtest.h>

#include "tensor/type.h"
#include "util/error.h"

namespace herd::tensor {
namespace {

TEST(TypeTable, SizesMatchGgml) {
  // (type, block size, bytes per block) as ggml.c type_traits.
  struct Row {
    Type type;
    std::int64_t block;
    std::size_t bytes;
  };
  const Row rows[] = {{Type::kF32, 1, 4},      {Type::kF16, 1, 2},      {Type::kBF16, 1, 2},
                      {Type::kQ4_0, 32, 18},   {Type::kQ4_1, 32, 20},   {Type::kQ5_0, 32, 22},
                      {Type::kQ5_1, 32, 24},   {Type::kQ8_0, 32, 34},   {Type::kQ8_1, 32, 36},
                      {Type::kQ2_K, 256, 84},  {Type::kQ3_K, 256, 110}, {Type::kQ4_K, 256, 144},
                      {Type::kQ5_K, 256, 176}, {Type::kQ6_K, 256, 210}, {Type::kQ8_K, 256, 292},
                      {Type::kI8, 1, 1},       {Type::kI32, 1, 4},      {Type::kF64, 1, 8}};
  for (const Row& r : rows) {
    EXPECT_EQ(traits(r.type).block_size, r.block) << type_name(r.type);
    EXPECT_EQ(traits(r.type).block_bytes, r.bytes) << type_name(r.type);
    EXPECT_EQ(traits(r.type).type, r.type);
  }
  EXPECT_EQ(row_bytes(Type::kQ4_K, 4096), 16u * 144u);
  EXPECT_EQ(row_bytes(Type::kF16, 7), 14u);
}

TEST(TypeTable, IdsAndNamesRoundTrip) {
  EXPECT_EQ(type_from_id(12), Type::kQ4_K);
  EXPECT_EQ(type_from_id(30), Type::kBF16);
  EXPECT_FALSE(type_from_id(4).has_value());  // removed Q4_2
  EXPECT_FALSE(type_from_id(1000).has_value());
  EXPECT_EQ(type_name(Type::kQ6_K), "q6_K");
  EXPECT_EQ(type_from_name("Q4_K"), Type::kQ4_K);
  EXPECT_EQ(type_from_name("q8_0"), Type::kQ8_0);
  EXPECT_EQ(type_from_name("BF16"), Type::kBF16);
  EXPECT_FALSE(type_from_name("q4_k_m").has_value());
}

TEST(TypeTable, ComputableTypesHaveConvertersAndOthersNot) {
  for (Type t : {Type::kF32, Type::kF16, Type::kBF16, Type::kQ4_0, Type::kQ4_1, Type::kQ5_0,
                 Type::kQ5_1, Type::kQ8_0, Type::kQ2_K, Type::kQ3_K, Type::kQ4_K, Type::kQ5_K,
                 Type::kQ6_K, Type::kQ8_K}) {
    EXPECT_TRUE(traits(t).supported) << type_name(t);
    EXPECT_NE(traits(t).dequantize, nullptr) << type_name(t);
    EXPECT_NE(traits(t).quantize, nullptr) << type_name(t);
  }
  EXPECT_FALSE(traits(Type::kI32).supported);
  EXPECT_THROW(traits(static_cast<Type>(77)), Error);
  float out[4];
  const std::int32_t in[4] = {};
  EXPECT_THROW(dequantize(Type::kI32, in, out, 4), Error);
  EXPECT_THROW(dequantize(Type::kQ4_0, in, out, 4), InvalidArgument);  // not a whole block
}

}  // namespace
}  // namespace herd::tensor
