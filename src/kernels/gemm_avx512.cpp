// The AVX-512 VNNI blocked prefill kernel (design in gemm.h).
//
// Panel layout, per 32-column block b of a 32-row panel (kBlockBytes apart):
//   q[kq][h]  8 x 2 vectors of 64 unsigned bytes: lane l holds columns 4kq..4kq+3 of row 16h + l
//   d[h]      16 floats per half: the row's scale for this block
//   m[h]      16 floats per half, types with a min only: the row's min for this block
// A weight is w = d * u - m (min types) or w = d * (u - offset) (offset types); the offset is
// removed exactly in the integer accumulator, which starts at -offset * sum(x) of the block.
#include <immintrin.h>

#include <cstddef>
#include <cstring>
#include <vector>

#include "kernels/avx512_lanes.h"
#include "kernels/dot.h"
#include "kernels/gemm.h"
#include "kernels/static_count.h"
#include "tensor/blocks.h"

namespace herd::kernels {
namespace {

constexpr int kPanelRows = 32;
constexpr int kQuads = 8;  // 4-column groups per 32-column block
constexpr std::size_t kQuantBytes = kQuads * 2 * 64;

// One 32-column block of one token, as the micro-kernel reads it.
struct GemmAct {
  std::int8_t qs[32];
  float d;
  float neg_dsum;  // -d * sum(qs): multiplies the weights' min
  // -offset * sum(qs): the integer accumulators start here. Types with a scale per 16 columns
  // (Q6_K) restart them halfway and keep the two halves' sums apart.
  std::int32_t neg_offset[2];
};
static_assert(sizeof(GemmAct) == 48);

// Types with one scale per 32 columns fill d[h]; Q6_K, with one per 16, fills d[h] for columns
// 0..15 and a second array, at the offset of m, for columns 16..31.
// --- weight types ---------------------------------------------------------------------------

inline __m512i lane_offsets(std::size_t row_stride, int half) {
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  return _mm512_mullo_epi32(_mm512_add_epi32(lanes, _mm512_set1_epi32(16 * half)),
                            _mm512_set1_epi32(static_cast<int>(row_stride)));
}

inline __m512i gather(__mmask16 valid, __m512i offsets, const std::uint8_t* base, std::size_t at) {
  return _mm512_mask_i32gather_epi32(
      _mm512_setzero_si512(), valid,
      _mm512_add_epi32(offsets, _mm512_set1_epi32(static_cast<int>(at))), base, 1);
}

inline __m512 gather_halves(__mmask16 valid, __m512i offsets, const std::uint8_t* base,
                            std::size_t at) {
  const __m512i words = gather(valid, offsets, base, at);
  return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(words));  // low 16 bits of each lane
}

// The 16 rows of one half of a panel, as the converters read them: by gather (base + offsets,
// invalid lanes masked) or by row pointer (invalid rows point at a valid one: their lanes are
// computed but never stored).
struct PanelHalf {
  const std::uint8_t* base;
  __m512i offsets;
  __mmask16 valid;
  const std::uint8_t* rows[16];
};

// out[k] lane l = bytes 4k..4k+3 at `at` of row l, k < 4: sixteen 16-byte row loads and a 4x4
// transpose of dwords per 128-bit lane. Lane i of r[j] holds row 4i + j, so that after the
// transpose dword 4i + j of out[k] is row 4i + j. Replaces four vpgatherdd, which cost about
// twice as much here; the 32-wide types' panels are converted this way.
inline void load_transposed(const PanelHalf& src, std::size_t at, __m512i out[4]) {
  __m512i r[4];
  for (int j = 0; j < 4; ++j) {
    auto row = [&](int i) {
      return _mm_loadu_si128(reinterpret_cast<const __m128i*>(src.rows[4 * i + j] + at));
    };
    r[j] = _mm512_inserti32x4(
        _mm512_inserti32x4(_mm512_inserti32x4(_mm512_castsi128_si512(row(0)), row(1), 1), row(2),
                           2),
        row(3), 3);
  }
  const __m512i t0 = _mm512_unpacklo_epi32(r[0], r[1]), t1 = _mm512_unpackhi_epi32(r[0], r[1]);
  const __m512i t2 = _mm512_unpacklo_epi32(r[2], r[3]), t3 = _mm512_unpackhi_epi32(r[2], r[3]);
  out[0] = _mm512_unpacklo_epi64(t0, t2);
  out[1] = _mm512_unpackhi_epi64(t0, t2);
  out[2] = _mm512_unpacklo_epi64(t1, t3);
  out[3] = _mm512_unpackhi_epi64(t1, t3);
}

struct Q4_0Panel {
  static constexpr bool kTwoScales = false;
  static constexpr bool kMin = false;
  static constexpr int kOffset = 8;
  static constexpr ActivationFormat kActivation = ActivationFormat::kQ8A;
  // Fills blocks [0, cols / 32) of one half (16 rows) of the panel.
  static void convert(const PanelHalf& src, std::int64_t cols, std::uint8_t* panel,
                      std::size_t block_bytes, int half) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    for (std::int64_t b = 0; b < cols / 32; ++b) {
      std::uint8_t* p = panel + b * block_bytes;
      const std::size_t at = b * sizeof(tensor::BlockQ4_0);
      __m512i q[4];
      load_transposed(src, at + offsetof(tensor::BlockQ4_0, qs), q);
      for (int k = 0; k < 4; ++k) {
        _mm512_store_si512(p + (k * 2 + half) * 64, _mm512_and_si512(q[k], low4));
        _mm512_store_si512(p + ((k + 4) * 2 + half) * 64,
                           _mm512_and_si512(_mm512_srli_epi16(q[k], 4), low4));
      }
      _mm512_store_ps(p + kQuantBytes + half * 64,
                      gather_halves(src.valid, src.offsets, src.base, at));
    }
  }
};

struct Q8_0Panel {
  static constexpr bool kTwoScales = false;
  static constexpr bool kMin = false;
  static constexpr int kOffset = 128;  // stored as q + 128 so that it is unsigned
  static constexpr ActivationFormat kActivation = ActivationFormat::kQ8A;
  static void convert(const PanelHalf& src, std::int64_t cols, std::uint8_t* panel,
                      std::size_t block_bytes, int half) {
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    for (std::int64_t b = 0; b < cols / 32; ++b) {
      std::uint8_t* p = panel + b * block_bytes;
      const std::size_t at = b * sizeof(tensor::BlockQ8_0) + offsetof(tensor::BlockQ8_0, qs);
      for (int k0 = 0; k0 < kQuads; k0 += 4) {
        __m512i q[4];
        load_transposed(src, at + 4 * k0, q);
        for (int k = 0; k < 4; ++k) {
          _mm512_store_si512(p + ((k0 + k) * 2 + half) * 64, _mm512_xor_si512(q[k], flip));
        }
      }
      _mm512_store_ps(p + kQuantBytes + half * 64, gather_halves(src.valid, src.offsets, src.base,
                                                                 b * sizeof(tensor::BlockQ8_0)));
    }
  }
};

// Q4_K / Q5_K: eight 32-element sub-blocks per 256, each with its own 6-bit scale and min; one
// panel block per sub-block, with d * scale and dmin * min in the float arrays. Q5_K adds bit 4
// of element l of sub-block s at bit s of qh[l].
template <class Block, bool kFifthBit>
struct QK_Panel {
  static constexpr bool kTwoScales = false;
  static constexpr bool kMin = true;
  static constexpr int kOffset = 0;
  static constexpr ActivationFormat kActivation = ActivationFormat::kQ8K;
  static void convert(const PanelHalf& src, std::int64_t cols, std::uint8_t* panel,
                      std::size_t block_bytes, int half) {
    const std::uint8_t* base = src.base;
    const __m512i offs = src.offsets;
    const __mmask16 valid = src.valid;
    const __m512i low4 = _mm512_set1_epi8(0x0F), bit0 = _mm512_set1_epi8(0x01);
    alignas(64) std::int32_t offset[16];
    _mm512_store_si512(offset, offs);
    for (std::int64_t i = 0; i < cols / tensor::kQKK; ++i) {
      std::uint8_t* p = panel + 8 * i * block_bytes;
      const std::size_t at = i * sizeof(Block);
      for (int c = 0; c < 4; ++c) {
        std::uint8_t* lo = p + 2 * c * block_bytes;
        std::uint8_t* hi = lo + block_bytes;
        for (int k = 0; k < kQuads; ++k) {
          const __m512i g = gather(valid, offs, base, at + offsetof(Block, qs) + 32 * c + 4 * k);
          __m512i qlo = _mm512_and_si512(g, low4);
          __m512i qhi = _mm512_and_si512(_mm512_srli_epi16(g, 4), low4);
          if constexpr (kFifthBit) {
            const __m512i h = gather(valid, offs, base, at + offsetof(Block, qh) + 4 * k);
            const __m512i hlo = _mm512_and_si512(_mm512_srli_epi32(h, 2 * c), bit0);
            const __m512i hhi = _mm512_and_si512(_mm512_srli_epi32(h, 2 * c + 1), bit0);
            qlo = _mm512_or_si512(qlo, _mm512_slli_epi32(hlo, 4));
            qhi = _mm512_or_si512(qhi, _mm512_slli_epi32(hhi, 4));
          }
          _mm512_store_si512(lo + (k * 2 + half) * 64, qlo);
          _mm512_store_si512(hi + (k * 2 + half) * 64, qhi);
        }
      }
      for (int l = 0; l < 16; ++l) {
        float* scale = reinterpret_cast<float*>(p + kQuantBytes + half * 64) + l;
        float* min = reinterpret_cast<float*>(p + kQuantBytes + 128 + half * 64) + l;
        if (!((valid >> l) & 1)) {
          for (int s = 0; s < 8; ++s) scale[s * block_bytes / 4] = min[s * block_bytes / 4] = 0.0f;
          continue;
        }
        const auto* blk = reinterpret_cast<const Block*>(base + offset[l] + at);
        const float d = _cvtsh_ss(blk->d), dmin = _cvtsh_ss(blk->dmin);
        for (int s = 0; s < 8; ++s) {
          std::uint8_t sc, m;
          tensor::get_scale_min_k4(s, blk->scales, &sc, &m);
          scale[s * block_bytes / 4] = d * sc;
          min[s * block_bytes / 4] = dmin * m;
        }
      }
    }
  }
};

using Q4_KPanel = QK_Panel<tensor::BlockQ4_K, false>;
using Q5_KPanel = QK_Panel<tensor::BlockQ5_K, true>;

// Q6_K: sixteen 16-element sub-blocks per 256 with int8 scales, 6-bit quants with offset 32.
// In half hf (128 elements) of a block, 32-column block j takes the low (j < 2) or high nibbles
// of ql[32 * (j % 2) ..] and bits 2j..2j+1 of qh[0..31] (ql advances 64 bytes, qh 32 per half).
struct Q6_KPanel {
  static constexpr bool kTwoScales = true;
  static constexpr bool kMin = false;
  static constexpr int kOffset = 32;
  static constexpr ActivationFormat kActivation = ActivationFormat::kQ8K;
  static void convert(const PanelHalf& src, std::int64_t cols, std::uint8_t* panel,
                      std::size_t block_bytes, int half) {
    using tensor::BlockQ6_K;
    const std::uint8_t* base = src.base;
    const __m512i offs = src.offsets;
    const __mmask16 valid = src.valid;
    const __m512i low4 = _mm512_set1_epi8(0x0F), low2 = _mm512_set1_epi8(0x03);
    alignas(64) std::int32_t offset[16];
    _mm512_store_si512(offset, offs);
    for (std::int64_t i = 0; i < cols / tensor::kQKK; ++i) {
      const std::size_t at = i * sizeof(BlockQ6_K);
      for (int hf = 0; hf < 2; ++hf) {
        for (int j = 0; j < 4; ++j) {
          std::uint8_t* p = panel + (8 * i + 4 * hf + j) * block_bytes;
          for (int k = 0; k < kQuads; ++k) {
            const __m512i ql = gather(
                valid, offs, base, at + offsetof(BlockQ6_K, ql) + 64 * hf + 32 * (j % 2) + 4 * k);
            const __m512i qh =
                gather(valid, offs, base, at + offsetof(BlockQ6_K, qh) + 32 * hf + 4 * k);
            const __m512i lo = _mm512_and_si512(_mm512_srli_epi32(ql, 4 * (j / 2)), low4);
            const __m512i hi = _mm512_and_si512(_mm512_srli_epi32(qh, 2 * j), low2);
            _mm512_store_si512(p + (k * 2 + half) * 64,
                               _mm512_or_si512(lo, _mm512_slli_epi32(hi, 4)));
          }
        }
      }
      for (int l = 0; l < 16; ++l) {
        const bool row_valid = (valid >> l) & 1;
        const auto* blk = reinterpret_cast<const BlockQ6_K*>(base + offset[l] + at);
        const float d = row_valid ? _cvtsh_ss(blk->d) : 0.0f;
        for (int b = 0; b < 8; ++b) {
          std::uint8_t* p = panel + (8 * i + b) * block_bytes + kQuantBytes + half * 64 + 4 * l;
          for (int s = 0; s < 2; ++s) {
            const float scale = row_valid ? d * blk->scales[2 * b + s] : 0.0f;
            std::memcpy(p + 128 * s, &scale, sizeof(float));
          }
        }
      }
    }
  }
};

// --- activations ----------------------------------------------------------------------------

// One token row rounded to Q8_0-style blocks straight into GemmAct, by the 512-bit block
// rounding of the decode kernels (avx512_lanes.h: the integers and scales of quantize_q8a).
inline void quantize_q8a_blocks(const float* x, std::int64_t nb, int offset, GemmAct* a) {
  for (std::int64_t b = 0; b < nb; ++b, x += 32) {
    const avx512::QuantizedBlock q = avx512::quantize_block(x);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(a[b].qs), q.lo);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(a[b].qs + 16), q.hi);
    a[b].d = q.d;
    a[b].neg_dsum = -q.d * static_cast<float>(q.sum);
    a[b].neg_offset[0] = -offset * q.sum;
  }
}

// Rounds token rows to the type's activation blocks (the same integers the tile kernels use)
// and spreads them into GemmAct blocks.
template <class T>
void prepare_activations(const float* x, std::int64_t ldx, std::int64_t n_tokens, std::int64_t cols,
                         GemmAct* out, ThreadPool& pool) {
  const KernelTable& table = avx512_kernels();
  const std::int64_t nb = cols / 32;
  pool.parallel_for(n_tokens, 4, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t t = begin; t < end; ++t) {
      GemmAct* a = out + t * nb;
      if constexpr (T::kActivation == ActivationFormat::kQ8A) {
        quantize_q8a_blocks(x + t * ldx, nb, T::kOffset, a);
      } else {
        // The K-quants' rows go through the table's Q8_K rounding, then are spread out.
        thread_local std::vector<std::uint8_t> rounded;
        rounded.resize(activation_row_bytes(T::kActivation, cols));
        table.quantize_q8k(x + t * ldx, rounded.data(), cols);
        const auto* q = reinterpret_cast<const tensor::BlockQ8_K*>(rounded.data());
        for (std::int64_t b = 0; b < nb; ++b) {
          const tensor::BlockQ8_K& k = q[b / 8];
          const int s = static_cast<int>(b % 8);
          const int sum = k.bsums[2 * s] + k.bsums[2 * s + 1];
          std::memcpy(a[b].qs, k.qs + 32 * s, 32);
          a[b].d = k.d;
          a[b].neg_dsum = -k.d * static_cast<float>(sum);
          if constexpr (T::kTwoScales) {
            a[b].neg_offset[0] = -T::kOffset * k.bsums[2 * s];
            a[b].neg_offset[1] = -T::kOffset * k.bsums[2 * s + 1];
          } else {
            a[b].neg_offset[0] = -T::kOffset * sum;
          }
        }
      }
    }
  });
}

// --- the micro-kernel -----------------------------------------------------------------------

inline std::int32_t load_quad(const std::int8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Tokens per micro-kernel call: NT x 2 halves of float and integer accumulators (and, for
// two-scale types, partial sums) plus 2 weight vectors must fit in the 32 vector registers.
template <class T>
constexpr int kTileTokens = T::kTwoScales ? 4 : 6;

// y[t * ldy + r] for the panel's rows (masks: valid rows of each half) and NT tokens.
template <class T, int NT>
void micro_kernel(const std::uint8_t* panel, std::size_t block_bytes, std::int64_t nb,
                  const GemmAct* act, std::int64_t act_stride, float* y, std::int64_t ldy,
                  __mmask16 valid0, __mmask16 valid1) {
  __m512 acc[NT][2];
  for (auto& a : acc) a[0] = a[1] = _mm512_setzero_ps();
  for (std::int64_t b = 0; b < nb; ++b) {
    const std::uint8_t* p = panel + b * block_bytes;
    __m512i isum[NT][2];
    // Integer sums over quads [k0, k1) of this block, starting from the offset term.
    auto sum_quads = [&](int k0, int k1, int part) {
      for (int t = 0; t < NT; ++t) {
        const __m512i start = T::kMin ? _mm512_setzero_si512()
                                      : _mm512_set1_epi32(act[t * act_stride + b].neg_offset[part]);
        isum[t][0] = isum[t][1] = start;
      }
      for (int k = k0; k < k1; ++k) {
        const __m512i w0 = _mm512_load_si512(p + k * 128);
        const __m512i w1 = _mm512_load_si512(p + k * 128 + 64);
        for (int t = 0; t < NT; ++t) {
          const __m512i xq = _mm512_set1_epi32(load_quad(act[t * act_stride + b].qs + 4 * k));
          isum[t][0] = _mm512_dpbusd_epi32(isum[t][0], w0, xq);
          isum[t][1] = _mm512_dpbusd_epi32(isum[t][1], w1, xq);
        }
      }
    };
    const float* d = reinterpret_cast<const float*>(p + kQuantBytes);
    if constexpr (T::kTwoScales) {
      // Columns 0..15 and 16..31 have their own row scales: combine before the token's scale.
      __m512 part[NT][2];
      sum_quads(0, kQuads / 2, 0);
      for (int t = 0; t < NT; ++t) {
        for (int h = 0; h < 2; ++h) {
          part[t][h] = _mm512_mul_ps(_mm512_cvtepi32_ps(isum[t][h]), _mm512_load_ps(d + 16 * h));
        }
      }
      sum_quads(kQuads / 2, kQuads, 1);
      for (int t = 0; t < NT; ++t) {
        const __m512 dx = _mm512_set1_ps(act[t * act_stride + b].d);
        for (int h = 0; h < 2; ++h) {
          part[t][h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t][h]),
                                       _mm512_load_ps(d + 32 + 16 * h), part[t][h]);
          acc[t][h] = _mm512_fmadd_ps(part[t][h], dx, acc[t][h]);
        }
      }
    } else {
      sum_quads(0, kQuads, 0);
      const __m512 d0 = _mm512_load_ps(d), d1 = _mm512_load_ps(d + 16);
      for (int t = 0; t < NT; ++t) {
        const __m512 dx = _mm512_set1_ps(act[t * act_stride + b].d);
        acc[t][0] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t][0]), _mm512_mul_ps(d0, dx), acc[t][0]);
        acc[t][1] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t][1]), _mm512_mul_ps(d1, dx), acc[t][1]);
      }
    }
    if constexpr (T::kMin) {
      const __m512 m0 = _mm512_load_ps(d + 32), m1 = _mm512_load_ps(d + 48);
      for (int t = 0; t < NT; ++t) {
        const __m512 s = _mm512_set1_ps(act[t * act_stride + b].neg_dsum);
        acc[t][0] = _mm512_fmadd_ps(m0, s, acc[t][0]);
        acc[t][1] = _mm512_fmadd_ps(m1, s, acc[t][1]);
      }
    }
  }
  for (int t = 0; t < NT; ++t) {
    _mm512_mask_storeu_ps(y + t * ldy, valid0, acc[t][0]);
    _mm512_mask_storeu_ps(y + t * ldy + 16, valid1, acc[t][1]);
  }
}

inline __mmask16 valid_lanes(std::int64_t rows_left) {
  if (rows_left >= 16) return 0xFFFF;
  if (rows_left <= 0) return 0;
  return static_cast<__mmask16>((1u << rows_left) - 1);
}

// While a panel is multiplied, the next panel's rows are requested into L2 a slice per step (one
// step per token tile): converting a panel otherwise waits on DRAM for rows that no hardware
// prefetcher saw coming (1B Q4_0 pp512: 189 -> 205 t/s on one thread). Default: nothing to do.
class RowPrefetch {
 public:
  RowPrefetch() = default;
  RowPrefetch(const Matrix& w, std::int64_t r0, std::int64_t steps)
      : rows_(w.row(r0)),
        stride_(w.row_stride),
        lines_per_row_((tensor::row_bytes(w.type, w.cols) + 63) / 64),
        lines_(kPanelRows * lines_per_row_),
        per_step_((lines_ + steps - 1) / steps) {}

  void step() {
    for (const std::size_t stop = std::min(lines_, line_ + per_step_); line_ < stop; ++line_) {
      _mm_prefetch(reinterpret_cast<const char*>(rows_ + (line_ / lines_per_row_) * stride_ +
                                                 (line_ % lines_per_row_) * 64),
                   _MM_HINT_T1);
    }
  }

 private:
  const std::uint8_t* rows_ = nullptr;
  std::size_t stride_ = 0, lines_per_row_ = 0, lines_ = 0, per_step_ = 0, line_ = 0;
};

template <class T>
void run(std::span<const Product> products, const float* x, std::int64_t n_tokens, std::int64_t ldx,
         ThreadPool& pool) {
  const std::int64_t cols = products[0].w->cols, nb = cols / 32;
  thread_local std::vector<GemmAct> act_buffer;
  if (act_buffer.size() < static_cast<std::size_t>(n_tokens * nb)) {
    act_buffer.resize(static_cast<std::size_t>(n_tokens * nb));
  }
  GemmAct* act = act_buffer.data();
  prepare_activations<T>(x, ldx, n_tokens, cols, act, pool);

  // Panels of all products in one parallel region: first_panel[i] is product i's first.
  std::vector<std::int64_t> first_panel(products.size() + 1, 0);
  for (std::size_t i = 0; i < products.size(); ++i) {
    first_panel[i + 1] = first_panel[i] + (products[i].w->rows + kPanelRows - 1) / kPanelRows;
  }
  const std::size_t block_bytes = kQuantBytes + (T::kMin || T::kTwoScales ? 256 : 128);
  pool.parallel_for(first_panel.back(), 1, [&](std::int64_t begin, std::int64_t end) {
    thread_local std::vector<std::uint8_t> buffer;
    const std::size_t bytes = block_bytes * static_cast<std::size_t>(nb) + 64;
    if (buffer.size() < bytes) buffer.resize(bytes);
    std::uint8_t* panel = buffer.data() + (-reinterpret_cast<std::uintptr_t>(buffer.data()) & 63);
    std::size_t i = 0;
    for (std::int64_t pi = begin; pi < end; ++pi) {
      while (pi >= first_panel[i + 1]) ++i;
      const Matrix& w = *products[i].w;
      float* y = products[i].y;
      const std::int64_t ldy = products[i].ldy;
      const std::int64_t r0 = (pi - first_panel[i]) * kPanelRows;
      const __mmask16 valid[2] = {valid_lanes(w.rows - r0), valid_lanes(w.rows - r0 - 16)};
      for (int h = 0; h < 2; ++h) {
        PanelHalf src{w.row(r0), lane_offsets(w.row_stride, h), valid[h], {}};
        const std::int64_t last = w.rows - 1;
        for (int l = 0; l < 16; ++l) src.rows[l] = w.row(std::min(r0 + 16 * h + l, last));
        T::convert(src, cols, panel, block_bytes, h);
      }
      // The rows of this thread's next panel (of this product or the next), if any.
      RowPrefetch next;
      if (pi + 1 < end) {
        const std::size_t j = pi + 1 < first_panel[i + 1] ? i : i + 1;
        const Matrix& nw = *products[j].w;
        next = RowPrefetch(nw, (pi + 1 - first_panel[j]) * kPanelRows,
                           (n_tokens + kTileTokens<T> - 1) / kTileTokens<T>);
      }
      for (std::int64_t t0 = 0; t0 < n_tokens; t0 += kTileTokens<T>) {
        next.step();
        const int nt = static_cast<int>(std::min<std::int64_t>(kTileTokens<T>, n_tokens - t0));
        with_static_count<kTileTokens<T>>(nt, [&](auto width) {
          micro_kernel<T, width()>(panel, block_bytes, nb, act + t0 * nb, nb, y + t0 * ldy + r0,
                                   ldy, valid[0], valid[1]);
        });
      }
    }
  });
}

}  // namespace

bool gemm_avx512_supports(tensor::Type type) {
  using tensor::Type;
  return type == Type::kQ4_0 || type == Type::kQ8_0 || type == Type::kQ4_K || type == Type::kQ5_K ||
         type == Type::kQ6_K;
}

void gemm_avx512(std::span<const Product> products, const float* x, std::int64_t n_tokens,
                 std::int64_t ldx, ThreadPool& pool) {
  using tensor::Type;
  switch (products[0].w->type) {
    case Type::kQ4_0:
      return run<Q4_0Panel>(products, x, n_tokens, ldx, pool);
    case Type::kQ8_0:
      return run<Q8_0Panel>(products, x, n_tokens, ldx, pool);
    case Type::kQ4_K:
      return run<Q4_KPanel>(products, x, n_tokens, ldx, pool);
    case Type::kQ5_K:
      return run<Q5_KPanel>(products, x, n_tokens, ldx, pool);
    case Type::kQ6_K:
      return run<Q6_KPanel>(products, x, n_tokens, ldx, pool);
    default:
      break;
  }
}

}  // namespace herd::kernels
