#include "model/weights.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "util/error.h"

namespace herd::model {

std::string layer_tensor(int il, std::string_view suffix) {
  return fmt::format("blk.{}.{}", il, suffix);
}

TensorBinder::TensorBinder(const gguf::File& file,
                           std::vector<std::unique_ptr<std::vector<float>>>& owned)
    : file_(file), owned_(owned) {}

const gguf::TensorInfo* TensorBinder::find(std::string_view name, Need need) const {
  const auto* t = file_.find_tensor(name);
  if (!t && need == Need::kRequired) {
    fail_format(
        "{}: tensor {} is missing, but the model's hyper-parameters need it — the file is "
        "incomplete or was written for another layer range",
        file_.path(), name);
  }
  return t;
}

void TensorBinder::check_shape(const gguf::TensorInfo& t,
                               std::vector<std::int64_t> expected) const {
  std::vector<std::int64_t> actual = t.dims;
  // Trailing dimensions of 1 carry no meaning (a [n, 1] tensor is a [n] vector).
  while (actual.size() > 1 && actual.back() == 1) actual.pop_back();
  while (expected.size() > 1 && expected.back() == 1) expected.pop_back();
  if (actual != expected) {
    fail_format("{}: tensor {} has shape [{}] but the hyper-parameters say [{}]", file_.path(),
                t.name, fmt::join(t.dims, ", "), fmt::join(expected, ", "));
  }
}

Matrix TensorBinder::view(const gguf::TensorInfo& t, std::int64_t cols, std::int64_t rows) const {
  const auto& tr = tensor::traits(t.type);
  if (!tr.supported) {
    fail_format("{}: tensor {} has type {}, which herd cannot compute with yet", file_.path(),
                t.name, tr.name);
  }
  if (cols % tr.block_size != 0) {
    fail_format("{}: tensor {} has rows of {} elements, not a multiple of the {} block size {}",
                file_.path(), t.name, cols, tr.name, tr.block_size);
  }
  Matrix m;
  m.type = t.type;
  m.data = file_.tensor_data(t);
  m.rows = rows;
  m.cols = cols;
  m.row_stride = tensor::row_bytes(t.type, cols);
  return m;
}

Matrix TensorBinder::matrix(std::string_view name, std::int64_t cols, std::int64_t rows,
                            Need need) {
  const auto* t = find(name, need);
  if (!t) return {};
  check_shape(*t, {cols, rows});
  bytes_ += t->n_bytes;
  return view(*t, cols, rows);
}

MatrixStack TensorBinder::stack(std::string_view name, std::int64_t cols, std::int64_t rows,
                                int count, Need need) {
  const auto* t = find(name, need);
  if (!t) return {};
  check_shape(*t, {cols, rows, count});
  bytes_ += t->n_bytes;
  MatrixStack s;
  s.first = view(*t, cols, rows);
  s.count = count;
  s.stride = s.first.row_stride * static_cast<std::size_t>(rows);
  return s;
}

Vector TensorBinder::vector(std::string_view name, std::int64_t n, Need need) {
  const auto* t = find(name, need);
  if (!t) return {};
  check_shape(*t, {n});
  bytes_ += t->n_bytes;
  if (t->type == tensor::Type::kF32) {
    return {reinterpret_cast<const float*>(file_.tensor_data(*t)), n};
  }
  const auto& tr = tensor::traits(t->type);
  if (!tr.supported || !tr.dequantize || n % tr.block_size != 0) {
    fail_format("{}: 1-D tensor {} has type {}, which herd cannot read", file_.path(), t->name,
                tr.name);
  }
  auto copy = std::make_unique<std::vector<float>>(static_cast<std::size_t>(n));
  tr.dequantize(file_.tensor_data(*t), copy->data(), n);
  Vector v{copy->data(), n};
  owned_.push_back(std::move(copy));
  return v;
}

}  // namespace herd::model
