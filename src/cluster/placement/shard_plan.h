// Which tensors of a model a pipeline stage needs, and the name of a stage's cached shard.
// Pure functions over a GGUF tensor table: no I/O.
#pragma once

#include <string>
#include <vector>

#include "gguf/reader.h"
#include "model/model.h"

namespace herd::cluster {

// The layer a tensor belongs to: N for "blk.N.*", -1 for a global tensor (token_embd,
// rope_freqs...).
int tensor_layer(const std::string& name);

// Names of the tensors a stage serving layers [range.first, range.last) of an n_layer model needs,
// in the file's order: blk.N.* for N in range; token_embd.weight when range.first == 0;
// output_norm.weight and output.weight when range.last == n_layer (token_embd.weight too when the
// output is tied, i.e. output.weight is absent); every other global tensor (e.g.
// rope_freqs.weight) for every stage. Throws InvalidArgument for an empty range or one outside
// [0, n_layer], FormatError for a "blk.N" with N >= n_layer.
std::vector<std::string> tensors_for_range(const gguf::File& file, model::LayerRange range,
                                           int n_layer);
// The same with n_layer read from the file's "<arch>.block_count".
std::vector<std::string> tensors_for_range(const gguf::File& file, model::LayerRange range);

// "<arch>.block_count" of a file (FormatError when absent or not positive).
int block_count(const gguf::Metadata& metadata);

// Cache key of a stage's shard: "<model_hash>-layers-<first>-<last>". Throws InvalidArgument
// unless model_hash is 16..128 lowercase hex digits (it becomes part of a file name).
std::string shard_key(const std::string& model_hash, model::LayerRange range);

}  // namespace herd::cluster
