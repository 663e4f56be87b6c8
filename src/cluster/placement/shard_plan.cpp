#include "cluster/placement/shard_plan.h"

#include <algorithm>
#include <charconv>

#include "util/error.h"

namespace herd::cluster {
namespace {

constexpr std::string_view kBlockPrefix = "blk.";
constexpr const char* kTokenEmbd = "token_embd.weight";
constexpr const char* kOutputNorm = "output_norm.weight";
constexpr const char* kOutput = "output.weight";

}  // namespace

int tensor_layer(const std::string& name) {
  if (!name.starts_with(kBlockPrefix)) return -1;
  const char* begin = name.data() + kBlockPrefix.size();
  const char* end = name.data() + name.size();
  int layer = -1;
  auto [ptr, ec] = std::from_chars(begin, end, layer);
  if (ec != std::errc{} || ptr == begin || ptr == end || *ptr != '.' || layer < 0) return -1;
  return layer;
}

int block_count(const gguf::Metadata& metadata) {
  std::string arch = metadata.require_string("general.architecture");
  std::int64_t n = metadata.require_int(arch + ".block_count");
  if (n <= 0 || n > 100000) fail_format("{}.block_count is {}, not a usable layer count", arch, n);
  return static_cast<int>(n);
}

std::vector<std::string> tensors_for_range(const gguf::File& file, model::LayerRange range,
                                           int n_layer) {
  if (range.first < 0 || range.last > n_layer || range.first >= range.last) {
    fail_argument("layer range [{}, {}) is empty or outside the model's {} layers", range.first,
                  range.last, n_layer);
  }
  const bool first_stage = range.first == 0;
  const bool last_stage = range.last == n_layer;
  const bool tied_output = file.find_tensor(kOutput) == nullptr;
  std::vector<std::string> names;
  for (const gguf::TensorInfo& info : file.tensors()) {
    const std::string& name = info.name;
    int layer = tensor_layer(name);
    bool wanted = false;
    if (layer >= 0) {
      if (layer >= n_layer) {
        fail_format("{}: tensor {} belongs to layer {} but the model has {} layers", file.path(),
                    name, layer, n_layer);
      }
      wanted = layer >= range.first && layer < range.last;
    } else if (name == kTokenEmbd) {
      wanted = first_stage || (last_stage && tied_output);
    } else if (name == kOutputNorm || name == kOutput) {
      wanted = last_stage;
    } else {
      wanted = true;  // rope_freqs.weight and other tensors every layer may read
    }
    if (wanted) names.push_back(name);
  }
  return names;
}

std::vector<std::string> tensors_for_range(const gguf::File& file, model::LayerRange range) {
  return tensors_for_range(file, range, block_count(file.metadata()));
}

std::string shard_key(const std::string& model_hash, model::LayerRange range) {
  bool hex = std::all_of(model_hash.begin(), model_hash.end(),
                         [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
  if (!hex || model_hash.size() < 16 || model_hash.size() > 128) {
    fail_argument("model hash '{}' is not 16..128 lowercase hex digits", model_hash);
  }
  if (range.first < 0 || range.first >= range.last) {
    fail_argument("layer range [{}, {}) is empty", range.first, range.last);
  }
  return model_hash + "-layers-" + std::to_string(range.first) + "-" + std::to_string(range.last);
}

}  // namespace herd::cluster
