// Decode-shaped numerics, for the calling thread while a DecodeShaped lives: a product over
// several tokens is computed the way a one-token decode step computes it (the dot-product tiles,
// never the blocked GEMM, whose sums round differently), and attention one query token at a
// time (never the multi-row loops). Slower than a prefill, and bit-identical to decoding the same
// tokens one by one. The scheduler uses it when it rebuilds the cache of a request that was
// decoding when its pipeline changed (engine/pipeline_recovery.h), so that the request goes on
// with exactly the tokens it would have had.
#pragma once

namespace herd::kernels {

class DecodeShaped {
 public:
  explicit DecodeShaped(bool on = true);
  ~DecodeShaped();
  DecodeShaped(const DecodeShaped&) = delete;
  DecodeShaped& operator=(const DecodeShaped&) = delete;

 private:
  bool before_;
};

// True inside a DecodeShaped scope of this thread.
bool decode_shaped();

}  // namespace herd::kernels
