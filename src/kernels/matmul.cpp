// Matrix products: pick the instruction set's kernel for the weight type, round the activations
// once per call to the format it wants, then walk the weights in tiles.
//
// Decode (1 token): rows are split over threads and every weight byte is streamed once.
// Prefill: each thread walks its rows in groups of kRowGroup (a few KiB of weights, kept in L1/L2)
// and, for each group, every tile of kMaxTileTokens tokens; a tile decodes a weight row once for
// all its tokens, so weights are decoded n_tokens / 8 times instead of n_tokens times.
#include "kernels/matmul.h"

#include <algorithm>
#include <vector>

#include "kernels/decode_shaped.h"
#include "kernels/dot.h"
#include "kernels/gemm.h"
#include "tensor/type.h"
#include "util/cpu_features.h"
#include "util/error.h"

namespace herd::kernels {
namespace {

constexpr std::int64_t kRowGroup = 16;

const tensor::TypeTraits& checked_traits(const Matrix& w) {
  const tensor::TypeTraits& t = tensor::traits(w.type);
  if (!t.supported || !t.dequantize) {
    fail("matmul: weight type {} is not supported by herd's kernels", t.name);
  }
  if (w.cols % t.block_size != 0) {
    fail("matmul: a row of {} elements is not a whole number of {}-element {} blocks", w.cols,
         t.block_size, t.name);
  }
  return t;
}

// The kernel for this weight type on the active instruction set, scalar when it has none;
// null for types only reachable through dequantization (Q8_1, Q8_K weights).
struct Plan {
  const DotKernel* kernel = nullptr;
  QuantizeRowFn quantize = nullptr;
};

Plan plan_for(tensor::Type type) {
  const KernelTable& table = kernels_for(active_isa());
  Plan p;
  p.kernel = table.find(type);
  const KernelTable* source = &table;
  if (!p.kernel) {
    source = &scalar_kernels();
    p.kernel = source->find(type);
  }
  if (p.kernel) p.quantize = source->quantizer(p.kernel->activation);
  return p;
}

// Activations in the kernel's format: [n_tokens] rows of `stride` bytes.
struct Activations {
  const std::uint8_t* data = nullptr;
  std::size_t stride = 0;
};

// Scratch for the rounded activations, reused across calls on the same calling thread.
std::vector<std::uint8_t>& activation_scratch() {
  thread_local std::vector<std::uint8_t> buffer;
  return buffer;
}

Activations prepare_activations(const Plan& plan, std::int64_t cols, const float* x,
                                std::int64_t n_tokens, std::int64_t ldx, ThreadPool* pool) {
  if (plan.kernel->activation == ActivationFormat::kF32) {
    return {reinterpret_cast<const std::uint8_t*>(x),
            static_cast<std::size_t>(ldx) * sizeof(float)};
  }
  const std::size_t stride = activation_row_bytes(plan.kernel->activation, cols);
  // 64 spare bytes to start on a cache line: the 512-bit kernels load whole lines.
  std::vector<std::uint8_t>& buffer = activation_scratch();
  if (buffer.size() < stride * static_cast<std::size_t>(n_tokens) + 64) {
    buffer.resize(stride * static_cast<std::size_t>(n_tokens) + 64);
  }
  std::uint8_t* out = buffer.data() + (-reinterpret_cast<std::uintptr_t>(buffer.data()) & 63);
  auto quantize = [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t t = begin; t < end; ++t) plan.quantize(x + t * ldx, out + t * stride, cols);
  };
  if (pool && n_tokens >= 8)
    pool->parallel_for(n_tokens, 4, quantize);
  else
    quantize(0, n_tokens);
  return {out, stride};
}

// Tokens per tile: one where the product must round as a decode step does (decode_shaped.h) and
// the kernel's sums depend on the tile's width. Asked on the calling thread (the flag is its own).
int tile_tokens(const Plan& plan) {
  return decode_shaped() && !plan.kernel->same_sums_at_any_width ? 1 : kMaxTileTokens;
}

void run_tiles(const Plan& plan, const Matrix& w, const Activations& act, std::int64_t n_tokens,
               float* y, std::int64_t ldy, std::int64_t row_begin, std::int64_t row_end,
               int max_tile = kMaxTileTokens) {
  const DotTileFn tile = plan.kernel->tile;
  for (std::int64_t g = row_begin; g < row_end; g += kRowGroup) {
    const std::int64_t g_end = std::min(row_end, g + kRowGroup);
    for (std::int64_t t0 = 0; t0 < n_tokens; t0 += max_tile) {
      const int nc = static_cast<int>(std::min<std::int64_t>(max_tile, n_tokens - t0));
      const std::uint8_t* x = act.data + static_cast<std::size_t>(t0) * act.stride;
      for (std::int64_t r = g; r < g_end; ++r) {
        tile(w.cols, w.row(r), x, act.stride, nc, y + t0 * ldy + r, ldy);
      }
    }
  }
}

// For weight types without a dot kernel: dequantize each row, then float dots.
void dequantized_rows(const tensor::TypeTraits& t, const Matrix& w, const float* x,
                      std::int64_t n_tokens, std::int64_t ldx, float* y, std::int64_t ldy,
                      std::int64_t row_begin, std::int64_t row_end, int max_tile) {
  std::vector<float> row(static_cast<std::size_t>(w.cols));
  const Matrix as_f32{tensor::Type::kF32, row.data(), 1, w.cols, row.size() * sizeof(float)};
  const Plan f32 = plan_for(tensor::Type::kF32);
  const Activations act{reinterpret_cast<const std::uint8_t*>(x),
                        static_cast<std::size_t>(ldx) * sizeof(float)};
  for (std::int64_t r = row_begin; r < row_end; ++r) {
    t.dequantize(w.row(r), row.data(), w.cols);
    run_tiles(f32, as_f32, act, n_tokens, y + r, ldy, 0, 1, max_tile);
  }
}

}  // namespace

void dequantize_row(const Matrix& w, std::int64_t r, float* out) {
  checked_traits(w).dequantize(w.row(r), out, w.cols);
}

void matmul_rows(const Matrix& w, const float* x, std::int64_t n_tokens, std::int64_t ldx, float* y,
                 std::int64_t ldy, std::int64_t row_begin, std::int64_t row_end) {
  const tensor::TypeTraits& t = checked_traits(w);
  if (n_tokens <= 0 || row_begin >= row_end) return;
  const Plan plan = plan_for(w.type);
  if (!plan.kernel) {
    dequantized_rows(t, w, x, n_tokens, ldx, y, ldy, row_begin, row_end,
                     decode_shaped() ? 1 : kMaxTileTokens);
    return;
  }
  const Activations act = prepare_activations(plan, w.cols, x, n_tokens, ldx, nullptr);
  run_tiles(plan, w, act, n_tokens, y, ldy, row_begin, row_end, tile_tokens(plan));
}

void matmul(const Matrix& w, const float* x, std::int64_t n_tokens, std::int64_t ldx, float* y,
            std::int64_t ldy, ThreadPool& pool) {
  const tensor::TypeTraits& t = checked_traits(w);
  HERD_CHECK(ldx >= w.cols && ldy >= w.rows);
  if (n_tokens <= 0 || w.rows <= 0) return;
  if (n_tokens >= kGemmMinTokens && gemm_supported(w.type) && !decode_shaped()) {
    const Product product{&w, y, ldy};
    gemm(std::span(&product, 1), x, n_tokens, ldx, pool);
    return;
  }
  const Plan plan = plan_for(w.type);
  if (!plan.kernel) {
    const int max_tile = decode_shaped() ? 1 : kMaxTileTokens;
    pool.parallel_for(w.rows, 16, [&](std::int64_t begin, std::int64_t end) {
      dequantized_rows(t, w, x, n_tokens, ldx, y, ldy, begin, end, max_tile);
    });
    return;
  }
  const Activations act = prepare_activations(plan, w.cols, x, n_tokens, ldx, &pool);
  const int max_tile = tile_tokens(plan);
  pool.parallel_for(w.rows, 8, [&](std::int64_t begin, std::int64_t end) {
    run_tiles(plan, w, act, n_tokens, y, ldy, begin, end, max_tile);
  });
}

void matmul_shared_input(std::span<const Product> products, const float* x, std::int64_t n_tokens,
                         std::int64_t ldx, ThreadPool& pool) {
  if (products.empty() || n_tokens <= 0) return;
  const Matrix& first = *products[0].w;
  bool same = true;
  for (const Product& p : products) {
    checked_traits(*p.w);
    HERD_CHECK(ldx >= p.w->cols && p.ldy >= p.w->rows);
    same = same && p.w->type == first.type && p.w->cols == first.cols;
  }
  const Plan plan = plan_for(first.type);
  if (!same || products.size() == 1 || !plan.kernel) {
    for (const Product& p : products) matmul(*p.w, x, n_tokens, ldx, p.y, p.ldy, pool);
    return;
  }
  if (n_tokens >= kGemmMinTokens && gemm_supported(first.type) && !decode_shaped()) {
    gemm(products, x, n_tokens, ldx, pool);
    return;
  }
  const Activations act = prepare_activations(plan, first.cols, x, n_tokens, ldx, &pool);
  // Rows of all products as one range, product after product (no allocation: this runs for
  // every layer of every decoded token).
  std::int64_t total_rows = 0;
  for (const Product& p : products) total_rows += p.w->rows;
  const int max_tile = tile_tokens(plan);
  pool.parallel_for(total_rows, 8, [&](std::int64_t begin, std::int64_t end) {
    std::int64_t row0 = 0;  // global index of the current product's row 0
    for (const Product& p : products) {
      const std::int64_t lo = std::max(begin, row0), hi = std::min(end, row0 + p.w->rows);
      if (lo < hi)
        run_tiles(plan, *p.w, act, n_tokens, p.y, p.ldy, lo - row0, hi - row0, max_tile);
      row0 += p.w->rows;
    }
  });
}

}  // namespace herd::kernels
