// The table of tensor types: one row per GGML type (ids and sizes as ggml.c type_traits).
#include <array>
#include <cctype>

#include "tensor/blocks.h"
#include "tensor/quants.h"
#include "tensor/type.h"
#include "util/error.h"

namespace herd::tensor {
namespace {

constexpr std::array kTable = {
    TypeTraits{Type::kF32, "f32", 1, 4, true, dequantize_row_f32, quantize_row_f32},
    TypeTraits{Type::kF16, "f16", 1, 2, true, dequantize_row_f16, quantize_row_f16},
    TypeTraits{Type::kQ4_0, "q4_0", kQK, sizeof(BlockQ4_0), true, dequantize_row_q4_0,
               quantize_row_q4_0},
    TypeTraits{Type::kQ4_1, "q4_1", kQK, sizeof(BlockQ4_1), true, dequantize_row_q4_1,
               quantize_row_q4_1},
    TypeTraits{Type::kQ5_0, "q5_0", kQK, sizeof(BlockQ5_0), true, dequantize_row_q5_0,
               quantize_row_q5_0},
    TypeTraits{Type::kQ5_1, "q5_1", kQK, sizeof(BlockQ5_1), true, dequantize_row_q5_1,
               quantize_row_q5_1},
    TypeTraits{Type::kQ8_0, "q8_0", kQK, sizeof(BlockQ8_0), true, dequantize_row_q8_0,
               quantize_row_q8_0},
    TypeTraits{Type::kQ8_1, "q8_1", kQK, sizeof(BlockQ8_1), true, dequantize_row_q8_1,
               quantize_row_q8_1},
    TypeTraits{Type::kQ2_K, "q2_K", kQKK, sizeof(BlockQ2_K), true, dequantize_row_q2_k,
               quantize_row_q2_k},
    TypeTraits{Type::kQ3_K, "q3_K", kQKK, sizeof(BlockQ3_K), true, dequantize_row_q3_k,
               quantize_row_q3_k},
    TypeTraits{Type::kQ4_K, "q4_K", kQKK, sizeof(BlockQ4_K), true, dequantize_row_q4_k,
               quantize_row_q4_k},
    TypeTraits{Type::kQ5_K, "q5_K", kQKK, sizeof(BlockQ5_K), true, dequantize_row_q5_k,
               quantize_row_q5_k},
    TypeTraits{Type::kQ6_K, "q6_K", kQKK, sizeof(BlockQ6_K), true, dequantize_row_q6_k,
               quantize_row_q6_k},
    TypeTraits{Type::kQ8_K, "q8_K", kQKK, sizeof(BlockQ8_K), true, dequantize_row_q8_k,
               quantize_row_q8_k},
    // Integer and f64 tensors can be stored in GGUF but herd does not compute with them.
    TypeTraits{Type::kI8, "i8", 1, 1, false, nullptr, nullptr},
    TypeTraits{Type::kI16, "i16", 1, 2, false, nullptr, nullptr},
    TypeTraits{Type::kI32, "i32", 1, 4, false, nullptr, nullptr},
    TypeTraits{Type::kI64, "i64", 1, 8, false, nullptr, nullptr},
    TypeTraits{Type::kF64, "f64", 1, 8, false, nullptr, nullptr},
    TypeTraits{Type::kBF16, "bf16", 1, 2, true, dequantize_row_bf16, quantize_row_bf16},
};

const TypeTraits* find(std::uint32_t id) {
  for (const TypeTraits& t : kTable) {
    if (static_cast<std::uint32_t>(t.type) == id) return &t;
  }
  return nullptr;
}

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

}  // namespace

std::optional<Type> type_from_id(std::uint32_t id) {
  const TypeTraits* t = find(id);
  if (!t) return std::nullopt;
  return t->type;
}

const TypeTraits& traits(Type type) {
  const TypeTraits* t = find(static_cast<std::uint32_t>(type));
  if (!t) fail("tensor type id {} is not a GGML type herd knows", static_cast<std::uint32_t>(type));
  return *t;
}

std::string_view type_name(Type type) {
  return traits(type).name;
}

std::optional<Type> type_from_name(std::string_view name) {
  for (const TypeTraits& t : kTable) {
    if (equal_ignoring_case(t.name, name)) return t.type;
  }
  return std::nullopt;
}

std::size_t row_bytes(Type type, std::int64_t n) {
  const TypeTraits& t = traits(type);
  HERD_CHECK(n % t.block_size == 0);
  return static_cast<std::size_t>(n / t.block_size) * t.block_bytes;
}

void dequantize(Type type, const void* src, float* dst, std::int64_t count) {
  const TypeTraits& t = traits(type);
  if (!t.dequantize) fail("tensor type {} cannot be converted to float by herd", t.name);
  if (count % t.block_size != 0) {
    fail_argument("{} elements of type {} are not a whole number of {}-element blocks", count,
                  t.name, t.block_size);
  }
  t.dequantize(src, dst, count);
}

void quantize(Type type, const float* src, void* dst, std::int64_t count) {
  const TypeTraits& t = traits(type);
  if (!t.quantize) fail("herd cannot write tensors of type {}", t.name);
  if (count % t.block_size != 0) {
    fail_argument("{} elements cannot be stored as {}: not a multiple of its block size {}", count,
                  t.name, t.block_size);
  }
  t.quantize(src, dst, count);
}

}  // namespace herd::tensor
