#include "model/tensor_split.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <numeric>

#include "tensor/type.h"
#include "util/error.h"

namespace herd::model {

namespace {

// Feed-forward columns are shared out in units that keep every quantized block of the down
// projection's rows whole (256 for the K-quants, 32 for the others), so that a rank's columns
// are a view of whole blocks and its activations round to the same blocks as on one node.
std::int64_t column_unit(std::int64_t n) {
  if (n % 256 == 0) return 256;
  if (n % 32 == 0) return 32;
  return 1;
}

struct Range {
  std::int64_t first = 0;
  std::int64_t count = 0;
};

Range share_of(std::int64_t total, std::int64_t unit, std::span<const double> weights, int rank) {
  if (total <= 0) return {};
  const std::vector<std::int64_t> units = proportional_split(total / unit, weights);
  std::int64_t first = 0;
  for (int r = 0; r < rank; ++r) first += units[r];
  return {first * unit, units[rank] * unit};
}

}  // namespace

std::vector<std::int64_t> proportional_split(std::int64_t total, std::span<const double> weights) {
  const double sum = std::accumulate(weights.begin(), weights.end(), 0.0);
  std::vector<std::int64_t> out(weights.size(), 0);
  std::vector<std::pair<double, std::size_t>> remainders;
  std::int64_t given = 0;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    const double exact = static_cast<double>(total) * weights[i] / sum;
    out[i] = static_cast<std::int64_t>(std::floor(exact));
    given += out[i];
    remainders.emplace_back(exact - static_cast<double>(out[i]), i);
  }
  // Largest remainders first; equal ones to the lower rank.
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (std::size_t i = 0; given < total; ++i, ++given) ++out[remainders[i % remainders.size()].second];
  return out;
}

ColumnRange TensorSlice::columns(std::int64_t width) const {
  if (whole()) return {0, width};
  const Range r = share_of(width, column_unit(width), weights, rank);
  return {r.first, r.count};
}

TensorSlice TensorSlice::all(const HParams& hp) {
  TensorSlice s;
  s.n_head_kv = hp.n_head_kv;
  s.n_expert = hp.n_expert;
  return s;
}

std::string TensorSlice::describe() const {
  const double sum = std::accumulate(weights.begin(), weights.end(), 0.0);
  std::string s = fmt::format("rank {} of {}: kv heads {}..{}, {:.0f}% of the feed-forward", rank,
                              n_ranks(), kv_head0, kv_head0 + n_head_kv,
                              100.0 * weights.at(rank) / sum);
  if (n_expert > 0 || expert0 > 0) s += fmt::format(", experts {}..{}", expert0, expert0 + n_expert);
  return s;
}

TensorSlice tensor_slice(const HParams& hp, std::span<const double> weights, int rank) {
  const int n = static_cast<int>(weights.size());
  if (n < 1) fail_argument("a tensor-parallel group needs at least one rank");
  if (rank < 0 || rank >= n) fail_argument("rank {} is outside a group of {}", rank, n);
  for (double w : weights) {
    if (!(w > 0) || !std::isfinite(w)) fail_argument("a rank's weight must be positive, got {}", w);
  }
  TensorSlice s = TensorSlice::all(hp);
  if (n == 1) return s;
  s.rank = rank;
  s.weights.assign(weights.begin(), weights.end());
  const Range kv = share_of(hp.n_head_kv, 1, weights, rank);
  s.kv_head0 = static_cast<int>(kv.first);
  s.n_head_kv = static_cast<int>(kv.count);
  const Range ex = share_of(hp.n_expert, 1, weights, rank);
  s.expert0 = static_cast<int>(ex.first);
  s.n_expert = static_cast<int>(ex.count);
  const std::int64_t ff = std::max(hp.n_ff, hp.n_ff_exp);
  if (s.n_head_kv == 0 && s.columns(ff).count == 0 && s.n_expert == 0) {
    fail_argument(
        "a tensor-parallel group of {} ranks leaves rank {} no work: the model has {} KV heads "
        "and {} feed-forward columns; use fewer nodes in the group",
        n, rank, hp.n_head_kv, ff);
  }
  return s;
}

namespace {

using Owned = std::vector<std::unique_ptr<std::vector<std::uint8_t>>>;

// Rows [first, first + count), as a compact matrix of its own. A view into the file would do for
// computing, but the kernel maps a file's pages in folios of up to several MiB, so a view of
// 3/8 of a matrix's rows kept ~1/2 of it resident (measured: Linux 6.18, ext4); a copy holds
// exactly the slice, and the file's pages go back.
Matrix rows_of(const Matrix& m, std::int64_t first, std::int64_t count, Owned& owned,
               const ReleaseFn& release) {
  if (!m.data) return m;
  HERD_CHECK(first >= 0 && first + count <= m.rows);
  if (count == 0) return {m.type, nullptr, 0, m.cols, m.row_stride};
  if (first == 0 && count == m.rows) return m;
  const std::size_t row = tensor::row_bytes(m.type, m.cols);
  auto& bytes = *owned.emplace_back(
      std::make_unique<std::vector<std::uint8_t>>(row * static_cast<std::size_t>(count)));
  for (std::int64_t r = 0; r < count; ++r) {
    std::memcpy(bytes.data() + r * row, m.row(first + r), row);
  }
  if (release) release(m.data, m.row_stride * m.rows);
  return {m.type, bytes.data(), count, m.cols, row};
}

Vector part_of(const Vector& v, std::int64_t first, std::int64_t count) {
  if (!v) return v;
  HERD_CHECK(first >= 0 && first + count <= v.n);
  return {count > 0 ? v.data + first : nullptr, count};
}

// Columns [first, first + count) of every row, as a compact matrix of its own.
Matrix columns_of(const Matrix& m, std::int64_t first, std::int64_t count, Owned& owned,
                  const ReleaseFn& release) {
  if (!m.data) return m;
  HERD_CHECK(first >= 0 && first + count <= m.cols);
  if (count == 0) return {m.type, nullptr, m.rows, 0, 0};
  if (first == 0 && count == m.cols) return m;
  const std::int64_t block = tensor::traits(m.type).block_size;
  Matrix out;
  out.rows = m.rows;
  out.cols = count;
  if (first % block == 0 && count % block == 0) {
    out.type = m.type;
    out.row_stride = tensor::row_bytes(m.type, count);
    auto& bytes = *owned.emplace_back(
        std::make_unique<std::vector<std::uint8_t>>(out.row_stride * m.rows));
    const std::size_t skip = tensor::row_bytes(m.type, first);
    for (std::int64_t r = 0; r < m.rows; ++r) {
      std::memcpy(bytes.data() + r * out.row_stride, m.row(r) + skip, out.row_stride);
    }
    out.data = bytes.data();
  } else {
    // The heads' columns split a quantized block: keep the exact weights, in f32.
    out.type = tensor::Type::kF32;
    out.row_stride = count * sizeof(float);
    auto& bytes = *owned.emplace_back(
        std::make_unique<std::vector<std::uint8_t>>(out.row_stride * m.rows));
    std::vector<float> row(m.cols);
    for (std::int64_t r = 0; r < m.rows; ++r) {
      tensor::dequantize(m.type, m.row(r), row.data(), m.cols);
      std::memcpy(bytes.data() + r * out.row_stride, row.data() + first, out.row_stride);
    }
    out.data = bytes.data();
  }
  if (release) release(m.data, m.row_stride * m.rows);
  return out;
}

MatrixStack experts_of(const MatrixStack& s, int first, int count) {
  if (!s) return s;
  HERD_CHECK(first >= 0 && first + count <= s.count);
  if (count == 0) return {};
  return {s.at(first), count, s.stride};
}

// A swiglu feed-forward: this rank's hidden columns.
void slice_ffn(const TensorSlice& slice, Matrix& gate, Matrix& up, Matrix& down, Owned& owned,
               const ReleaseFn& release) {
  if (!gate.data) return;
  const ColumnRange c = slice.columns(gate.rows);
  gate = rows_of(gate, c.first, c.count, owned, release);
  up = rows_of(up, c.first, c.count, owned, release);
  down = columns_of(down, c.first, c.count, owned, release);
}

}  // namespace

void slice_layer(const HParams& hp, const TensorSlice& slice, LayerWeights& w, Owned& owned,
                 const ReleaseFn& release) {
  if (slice.whole()) return;
  const std::int64_t group = hp.n_head / hp.n_head_kv;  // query heads per KV head
  const std::int64_t h0 = slice.kv_head0 * group, nh = slice.n_head_kv * group;
  const std::int64_t kv0 = slice.kv_head0, nkv = slice.n_head_kv;
  // Query rows: a head is head_dim_k rows of wq (or of wq_b, deepseek2's low-rank path).
  w.wq = rows_of(w.wq, h0 * hp.head_dim_k, nh * hp.head_dim_k, owned, release);
  w.bq = part_of(w.bq, h0 * hp.head_dim_k, nh * hp.head_dim_k);
  w.wq_b = rows_of(w.wq_b, h0 * hp.head_dim_k, nh * hp.head_dim_k, owned, release);
  w.wk = rows_of(w.wk, kv0 * hp.head_dim_k, nkv * hp.head_dim_k, owned, release);
  w.bk = part_of(w.bk, kv0 * hp.head_dim_k, nkv * hp.head_dim_k);
  w.wv = rows_of(w.wv, kv0 * hp.head_dim_v, nkv * hp.head_dim_v, owned, release);
  w.bv = part_of(w.bv, kv0 * hp.head_dim_v, nkv * hp.head_dim_v);
  // deepseek2: per-head expansion of the latent (the latent itself is replicated).
  if (w.wkv_b.data) {
    const std::int64_t per_head = hp.head_dim_k - hp.n_rot + hp.head_dim_v;
    w.wkv_b = rows_of(w.wkv_b, h0 * per_head, nh * per_head, owned, release);
  }
  w.wk_b = experts_of(w.wk_b, static_cast<int>(h0), static_cast<int>(nh));
  w.wv_b = experts_of(w.wv_b, static_cast<int>(h0), static_cast<int>(nh));
  w.wo = columns_of(w.wo, h0 * hp.head_dim_v, nh * hp.head_dim_v, owned, release);

  slice_ffn(slice, w.ffn_gate, w.ffn_up, w.ffn_down, owned, release);
  slice_ffn(slice, w.gate_shexp, w.up_shexp, w.down_shexp, owned, release);
  w.gate_exps = experts_of(w.gate_exps, slice.expert0, slice.n_expert);
  w.up_exps = experts_of(w.up_exps, slice.expert0, slice.n_expert);
  w.down_exps = experts_of(w.down_exps, slice.expert0, slice.n_expert);
}

}  // namespace herd::model
