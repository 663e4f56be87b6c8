// Writer -> File::parse round trips: every value type, nested arrays, tensors, alignment.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "gguf/gguf_builders.h"
#include "gguf/reader.h"
#include "gguf/writer.h"
#include "support/test_data.h"
#include "tensor/type.h"
#include "util/error.h"

namespace herd::gguf {
namespace {

using testing::sample_writer;

File reparse(const std::vector<std::uint8_t>& bytes) {
  return File::parse(bytes, "roundtrip");
}

TEST(GgufRoundTrip, EveryValueTypeSurvivesWriteAndParse) {
  std::vector<std::pair<std::string, Value>> values = {
      {"u8", Value::from_u8(255)},
      {"i8", Value::from_i8(-128)},
      {"u16", Value::from_u16(65535)},
      {"i16", Value::from_i16(-32768)},
      {"u32", Value::from_u32(4000000000u)},
      {"i32", Value::from_i32(std::numeric_limits<std::int32_t>::min())},
      {"u64", Value::from_u64(std::numeric_limits<std::uint64_t>::max())},
      {"i64", Value::from_i64(std::numeric_limits<std::int64_t>::min())},
      {"f32", Value::from_f32(0.1f)},
      {"f64", Value::from_f64(-1e300)},
      {"bool.t", Value::from_bool(true)},
      {"bool.f", Value::from_bool(false)},
      {"str", Value::from_string(std::string("with\0nul and ünïcode", 21))},
      {"str.empty", Value::from_string("")},
      {"arr.empty", Value::from_array(ValueType::kInt32, {})},
      {"arr.f64",
       Value::from_array(ValueType::kFloat64, {Value::from_f64(1.5), Value::from_f64(-2)})},
      {"arr.str",
       Value::from_array(ValueType::kString, {Value::from_string("a"), Value::from_string("")})},
      {"arr.nested",
       Value::from_array(
           ValueType::kArray,
           {Value::from_array(ValueType::kArray,
                              {Value::from_array(ValueType::kBool, {Value::from_bool(true)})}),
            Value::from_array(ValueType::kUint16, {Value::from_u16(7)})})},
  };
  Writer w;
  for (const auto& [k, v] : values) w.set(k, v);
  File f = reparse(w.to_bytes());
  EXPECT_EQ(f.version(), 3u);
  ASSERT_EQ(f.metadata().entries().size(), values.size());
  for (const auto& [k, v] : values) {
    const Value* got = f.metadata().find(k);
    ASSERT_NE(got, nullptr) << k;
    EXPECT_TRUE(*got == v) << "key " << k << " type " << value_type_name(got->type);
  }
  EXPECT_EQ(f.metadata().find("u64")->data, Value::from_u64(~0ull).data);
  EXPECT_FLOAT_EQ(static_cast<float>(*f.metadata().get_float("f32")), 0.1f);
}

TEST(GgufRoundTrip, TypedSettersAndArrayGetters) {
  Writer w;
  w.set_u32("a", 7);
  w.set_i32("b", -7);
  w.set_u64("c", 1ull << 40);
  w.set_bool("d", true);
  w.set_string("e", "text");
  w.set_f32_array("f", {1.0f, -0.5f});
  w.set_i32_array("g", {3, -4});
  w.set_string_array("h", {"x", "y"});
  w.set_u32("a", 8);  // replaces
  File f = reparse(w.to_bytes());
  const Metadata& m = f.metadata();
  EXPECT_EQ(m.entries().size(), 8u);
  EXPECT_EQ(m.require_int("a"), 8);
  EXPECT_EQ(m.find("a")->type, ValueType::kUint32);
  EXPECT_EQ(m.require_int("b"), -7);
  EXPECT_EQ(m.require_int("c"), 1ll << 40);
  EXPECT_EQ(m.get_bool("d"), true);
  EXPECT_EQ(m.require_string("e"), "text");
  EXPECT_EQ(*m.get_float_array("f"), (std::vector<float>{1.0f, -0.5f}));
  EXPECT_EQ(*m.get_int_array("g"), (std::vector<std::int64_t>{3, -4}));
  EXPECT_EQ(*m.get_float_array("g"), (std::vector<float>{3.0f, -4.0f}));
  EXPECT_EQ(*m.get_string_array("h"), (std::vector<std::string>{"x", "y"}));
  EXPECT_DOUBLE_EQ(m.require_float("a"), 8.0);
  EXPECT_FALSE(m.get_int("missing").has_value());
  EXPECT_FALSE(m.get_string_array("missing").has_value());
}

TEST(GgufMetadata, WrongTypesAndMissingKeysNameTheKey) {
  Writer w;
  w.set_string("name", "x");
  w.set_u64("big", std::numeric_limits<std::uint64_t>::max());
  w.set_i32_array("ints", {1});
  File f = reparse(w.to_bytes());
  const Metadata& m = f.metadata();
  try {
    (void)m.get_int("name");
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("'name'"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)m.get_int("big"), FormatError);
  EXPECT_THROW((void)m.get_bool("name"), FormatError);
  EXPECT_THROW((void)m.get_string_array("ints"), FormatError);
  EXPECT_THROW((void)m.get_float("name"), FormatError);
  try {
    (void)m.require_int("llama.block_count");
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("llama.block_count"), std::string::npos);
  }
  EXPECT_THROW((void)f.architecture(), FormatError);
}

TEST(GgufRoundTrip, TensorsKeepShapeTypeAndBytes) {
  Writer w = sample_writer();
  std::vector<float> values(32 * 2);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = std::sin(static_cast<float>(i));
  w.add_tensor_f32("d.f32", tensor::Type::kF32, {32, 2}, values);
  w.add_tensor_f32("e.q8_0", tensor::Type::kQ8_0, {32, 2}, values);
  std::vector<std::uint8_t> bytes = w.to_bytes();
  EXPECT_EQ(bytes.size(), w.size_bytes());
  File f = reparse(bytes);
  EXPECT_EQ(f.architecture(), "llama");
  ASSERT_EQ(f.tensors().size(), 5u);
  EXPECT_EQ(f.tensors()[0].name, "a.f32");  // order kept
  const TensorInfo* a = f.find_tensor("a.f32");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dims, (std::vector<std::int64_t>{8, 2}));
  EXPECT_EQ(a->n_elements, 16);
  EXPECT_EQ(a->n_bytes, 64u);
  EXPECT_EQ(a->dim(3), 1);
  const TensorInfo* c = f.find_tensor("c.q8_0");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->type, tensor::Type::kQ8_0);
  EXPECT_EQ(c->n_bytes, 2u * 34 * 3);
  EXPECT_EQ(f.tensor_data(*c)[0], 3);
  EXPECT_EQ(f.tensor_data(*c)[1], 10);
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
  for (const TensorInfo& t : f.tensors()) EXPECT_EQ(t.offset % 32, 0u) << t.name;

  const TensorInfo* d = f.find_tensor("d.f32");
  ASSERT_NE(d, nullptr);
  const float* got = reinterpret_cast<const float*>(f.tensor_data(*d));
  for (std::size_t i = 0; i < values.size(); ++i) EXPECT_EQ(got[i], values[i]);
  // Q8_0 round trip through the table's dequantizer: within the 8-bit step of each block.
  const TensorInfo* e = f.find_tensor("e.q8_0");
  ASSERT_NE(e, nullptr);
  std::vector<float> back(values.size());
  tensor::traits(e->type).dequantize(f.tensor_data(*e), back.data(), e->n_elements);
  for (std::size_t i = 0; i < values.size(); ++i) EXPECT_NEAR(back[i], values[i], 1.0 / 127 + 1e-3);
}

TEST(GgufRoundTrip, AlignmentOf64IsWrittenAndHonoured) {
  Writer w = sample_writer(64);
  File f = reparse(w.to_bytes());
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.metadata().require_int("general.alignment"), 64);
  EXPECT_EQ(f.metadata().find("general.alignment")->type, ValueType::kUint32);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  for (const TensorInfo& t : f.tensors()) {
    EXPECT_EQ(t.offset % 64, 0u) << t.name;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(f.tensor_data(t)) % 64,
              reinterpret_cast<std::uintptr_t>(f.bytes().data()) % 64);
  }
  // Copying metadata carries the alignment into a new writer.
  Writer copy;
  copy.copy_metadata(f.metadata());
  EXPECT_EQ(copy.alignment(), 64u);
  EXPECT_EQ(reparse(copy.to_bytes()).metadata().entries().size(), f.metadata().entries().size());

  Writer default_alignment = sample_writer();
  File g = reparse(default_alignment.to_bytes());
  EXPECT_EQ(g.alignment(), 32u);
  EXPECT_FALSE(g.metadata().has("general.alignment"));
}

TEST(GgufWriter, RejectsInvalidInput) {
  EXPECT_THROW(Writer(0), InvalidArgument);
  EXPECT_THROW(Writer(48), InvalidArgument);
  EXPECT_THROW(Writer(4), InvalidArgument);
  Writer w;
  EXPECT_THROW(w.set_u32("general.alignment", 3), InvalidArgument);
  std::vector<std::uint8_t> data(16);
  EXPECT_THROW(w.add_tensor("t", tensor::Type::kF32, {3}, data), InvalidArgument);  // size
  EXPECT_THROW(w.add_tensor("t", tensor::Type::kF32, {}, data), InvalidArgument);
  EXPECT_THROW(w.add_tensor("t", tensor::Type::kF32, {4, 0}, data), InvalidArgument);
  EXPECT_THROW(w.add_tensor("t", tensor::Type::kQ8_0, {16}, data), InvalidArgument);  // block
  w.add_tensor("t", tensor::Type::kF32, {4}, data);
  EXPECT_THROW(w.add_tensor("t", tensor::Type::kF32, {4}, data), InvalidArgument);  // dup
  std::vector<float> few(3);
  EXPECT_THROW(w.add_tensor_f32("u", tensor::Type::kF32, {4}, few), InvalidArgument);
  // A value whose payload does not fit its declared width is refused at write time.
  w.set("bad", Value{ValueType::kUint8, std::uint64_t{300}});
  EXPECT_THROW((void)w.to_bytes(), InvalidArgument);
  Writer mixed;
  mixed.set("mixed", Value::from_array(ValueType::kUint8, {Value::from_string("x")}));
  EXPECT_THROW((void)mixed.to_bytes(), InvalidArgument);
}

TEST(GgufWriter, WriteCreatesAFileThatOpensAndLeavesNoTemporary) {
  auto dir = herd::testing::temp_dir("gguf_write");
  auto path = dir / "model.gguf";
  Writer w = sample_writer(64);
  w.write(path.string());
  File f = File::open(path.string());
  EXPECT_EQ(f.path(), path.string());
  EXPECT_NE(f.mapping(), nullptr);
  EXPECT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(std::filesystem::file_size(path), w.size_bytes());
  auto expected = w.to_bytes();
  EXPECT_TRUE(std::equal(expected.begin(), expected.end(), f.bytes().begin(), f.bytes().end()));
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
  EXPECT_THROW(w.write((dir / "no" / "such" / "dir.gguf").string()), Error);
  EXPECT_THROW(File::open((dir / "absent.gguf").string()), Error);
}

}  // namespace
}  // namespace herd::gguf
