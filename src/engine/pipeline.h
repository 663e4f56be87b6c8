// The seam between generation and wherever the model's layers run. One process runs the whole
// model in a LocalPipeline; a cluster runs stages on several machines behind the same interface
// (cluster/ implements it; engine/ never knows there is a network).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace herd::engine {

class Pipeline {
 public:
  virtual ~Pipeline() = default;

  // Runs `tokens` at positions pos0, pos0+1, ... through the whole model, appending them to the
  // KV cache. Fills `logits` with [n, n_vocab] floats where n = tokens.size() if all_logits,
  // else 1 (the last position). Throws herd::Error (e.g. context full, node lost).
  virtual void forward(std::span<const std::int32_t> tokens, std::int32_t pos0, bool all_logits,
                       std::vector<float>& logits) = 0;

  // Forgets every cached position >= n_keep (a new request that shares a prefix keeps it).
  virtual void truncate(std::int32_t n_keep) = 0;

  virtual std::int32_t n_ctx() const = 0;
  virtual std::int32_t n_vocab() const = 0;
};

}  // namespace herd::engine
