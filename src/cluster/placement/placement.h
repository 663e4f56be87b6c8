// Placement: which node runs which layers. A pure function of the model's sizes and the members'
// memory, speed and links — no sockets, no clocks — so it is tested table-driven. The algorithm
// and its choices are explained in docs/cluster.md ("Placement").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace herd::cluster {

struct ModelShape {
  std::vector<std::uint64_t> layer_bytes;          // weights of each transformer block, in order
  std::uint64_t embedding_bytes = 0;               // token embedding (first stage)
  std::uint64_t head_bytes = 0;                    // final norm + output projection (last stage)
  std::uint64_t kv_bytes_per_token_per_layer = 0;  // K and V of one position in one layer
  std::int64_t n_ctx = 0;                          // positions the KV cache must hold
  std::uint64_t activation_bytes = 0;              // hidden state sent between stages per token
};

struct LinkEstimate {
  double latency_s = 0;              // one-way, to the rest of the cluster (link_probe: rtt / 2)
  double bandwidth_bytes_per_s = 0;  // 0 = unknown (transfer time ignored)
};

struct PlacementMember {
  std::string id;
  std::uint64_t usable_memory_bytes = 0;
  double bandwidth_bytes_per_s = 0;  // measured memory read speed: the decode speed limit
  LinkEstimate link;
};

struct PlacementOptions {
  // Scratch buffers, activations, runtime and the OS page cache headroom on every node used.
  std::uint64_t per_node_overhead_bytes = std::uint64_t{512} << 20;
  // Plans whose estimated token time is within this fraction count as equally fast; the one with
  // fewer stages (hops) wins.
  double equal_speed_tolerance = 0.02;
  // Every subset of members is tried up to this many members; above it, prefixes of the members
  // sorted by speed and by memory.
  int exhaustive_member_limit = 10;
};

struct Stage {
  std::string node_id;
  int first_layer = 0;  // [first_layer, last_layer)
  int last_layer = 0;
  std::uint64_t weight_bytes = 0;  // layers, plus embedding (first) and head (last)
  std::uint64_t kv_bytes = 0;
  std::uint64_t total_bytes = 0;   // weights + KV + overhead: what the node must have
  std::uint64_t usable_bytes = 0;  // what it has
  double seconds_per_token = 0;    // bytes read per token / bandwidth
  std::string reason;
  // Tensor parallelism: stages with the same group run the same layers together, each holding
  // `share` of every layer (rank = order within the group, the group's leader first). A pipeline
  // stage is a group of one with share 1.
  int group = 0;
  double share = 1.0;
};

struct Plan {
  std::string mode = "pipeline";    // "pipeline" or "tensor"
  std::vector<Stage> stages;        // in pipeline order (a group's ranks side by side)
  double seconds_per_token = 0;     // single stream: all stages plus the hops between them
  double bottleneck_seconds = 0;    // slowest stage: bounds throughput with several streams
  std::vector<std::string> unused;  // "id: why" for members not in the plan
  std::string summary;

  // A table of which node holds which layers and why, for `herd cluster plan` and the logs.
  std::string explain() const;
};

// Throws herd::Error when the cluster cannot hold the model, with the numbers and what to do;
// InvalidArgument on an empty model, no members, duplicate ids or a member without a speed.
Plan plan(const ModelShape& model, const std::vector<PlacementMember>& members,
          const PlacementOptions& options = {});

// Tensor parallelism: one group of every member, `leader` (which embeds the tokens and holds
// the head) first, the others by id. Each holds a share of every layer — its KV heads,
// feed-forward columns and experts — in proportion to its measured memory bandwidth (snapped to
// quarters of the fastest, so that nodes of the same kind split evenly). Throws herd::Error when
// a member cannot hold its share, saying what it lacks; InvalidArgument for an unknown leader.
Plan plan_tensor(const ModelShape& model, const std::vector<PlacementMember>& members,
                 const std::string& leader, const PlacementOptions& options = {});

// Measured links between members (one-way latency and bandwidth, taken as the same both ways).
class LinkTable {
 public:
  void set(const std::string& a, const std::string& b, LinkEstimate link);
  // The link between a and b; one never measured is free (zero latency, unlimited bandwidth).
  LinkEstimate between(const std::string& a, const std::string& b) const;
  bool empty() const { return links_.empty(); }

 private:
  std::vector<std::pair<std::pair<std::string, std::string>, LinkEstimate>> links_;
};

// The planner's estimate of a plan's decode time per token (one stream) over `links`:
//   per group: its layers' bytes / the sum of its ranks' bandwidths (shares follow bandwidth),
//              + for a group of n > 1, two all-reduces per layer, each the slowest link's
//                latency + (n - 1) messages of one token's hidden state over the slowest link,
//              + the leader's send of the hidden state to its followers;
//   per hop between groups' leaders (and back from the last to the coordinator): latency +
//   hidden state (logits on the way back) / bandwidth.
double estimate_seconds_per_token(const ModelShape& model, const Plan& plan,
                                  const std::vector<PlacementMember>& members,
                                  const LinkTable& links, std::int64_t n_vocab);

// Chooses how the members share the model from their memory, speed and the measured links:
// the layer-range pipeline of plan(), one tensor-parallel group of everyone, and every pipeline
// of tensor-parallel groups (partitions of the members — of every subset with the leader for up
// to 6 members — with layers shared in proportion to each group's bandwidth), each costed by
// estimate_seconds_per_token; the fastest that fits in memory wins, fewer nodes on a tie within
// options.equal_speed_tolerance. `leader` (the coordinator) leads the first group. Its summary
// says what was chosen and the estimates of the best pipeline-only and tensor-only plans.
Plan plan_auto(const ModelShape& model, const std::vector<PlacementMember>& members,
               const std::string& leader, const LinkTable& links, std::int64_t n_vocab,
               const PlacementOptions& options = {});

// "14.2 GiB", "512 MiB": for messages.
std::string format_bytes(std::uint64_t bytes);

// Most sequences a server runs at once unless told (--parallel).
inline constexpr int kMaxDefaultParallel = 8;
// Sequences to serve at once by default: as many KV slots of kv_bytes_per_seq as fit in half the
// memory left after the weights (the other half stays free for the system and scratch), between
// 1 and kMaxDefaultParallel. A slot's memory is only committed as its positions fill.
int default_parallel(std::uint64_t weight_bytes, std::uint64_t kv_bytes_per_seq,
                     std::uint64_t usable_bytes);

}  // namespace herd::cluster
