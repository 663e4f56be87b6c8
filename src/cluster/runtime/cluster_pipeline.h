// engine::Pipeline across machines, on the coordinator: runs the coordinator's own first stage
// (layer 0 up, with the token embedding), sends the hidden state down a chain of StageServers,
// and waits for the logits from the last one. Up to one batch per stage may be in flight
// (submit/collect): while the last stage works on one batch, the coordinator computes the next. A node that dies or stops answering turns into a
// herd::Error naming it ("node 'b' (10.0.0.2:7002) stopped answering during token 17") within
// reply_timeout (+ a probe), never a hang.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cluster/runtime/stage_protocol.h"
#include "cluster/transport/transport.h"
#include "engine/pipeline.h"
#include "engine/stage.h"

namespace herd::cluster {

// One remote stage, in layer order.
struct ChainNode {
  std::string name;   // the node's id, e.g. "b"
  std::string where;  // where it is, for people, e.g. "10.0.0.2:7002"
  PeerId peer = 0;    // connected on the coordinator's transport
};

// The coordinator's tensor-parallel group (model/tensor_split.h): its other ranks, each running
// a follower StageServer, and the reducer that adds up the ranks' partial sums. Empty on a
// coordinator that holds its layers whole.
struct TensorGroup {
  std::vector<ChainNode> followers;
  model::Reducer* reducer = nullptr;  // must outlive the pipeline
};

struct ClusterPipelineOptions {
  // From sending a forward until its logits arrive. Then every node is pinged to name the one
  // that stopped. A dead connection is reported at once, without waiting for this.
  Millis reply_timeout{30000};
  Millis probe_timeout{2000};
  Millis send_timeout{10000};
  bool checksum = false;  // add a payload checksum to what the coordinator sends
};

class ClusterPipeline final : public engine::Pipeline {
 public:
  // `first`: the coordinator's layers [0, k), k >= 1. `chain`: the stages
  // holding [k, n_layer), in order, each served by a StageServer whose coordinator link is this
  // transport. Pings every node (Error naming one that does not answer). With a tensor group,
  // `first` holds the coordinator's slice and every batch runs on the group's ranks together.
  ClusterPipeline(std::shared_ptr<const model::Model> first, int n_ctx, ThreadPool& pool,
                  Transport& transport, std::vector<ChainNode> chain,
                  ClusterPipelineOptions options = {}, int n_seqs = 1, TensorGroup group = {});

  void run(const engine::Batch& batch, std::vector<float>& logits) override;
  int max_in_flight() const override { return static_cast<int>(chain_.size()) + 1; }
  void submit(const engine::Batch& batch) override;
  void collect(std::vector<float>& logits) override;
  int in_flight() const override;
  void drop_in_flight() override;
  void forget(std::int32_t seq, std::int32_t n_keep) override;
  void copy_prefix(std::int32_t src, std::int32_t dst, std::int32_t n) override;
  std::int32_t n_ctx() const override { return stage_.n_ctx(); }
  std::int32_t n_vocab() const override { return stage_.model().n_vocab(); }
  std::int32_t n_seqs() const override { return stage_.n_seqs(); }

  // Pings the nodes in order; Error naming the first that does not answer within probe_timeout.
  void check_chain();
  // Tells the chain to stop serving (each node passes it on). Best effort: errors are logged.
  void shutdown();
  // A node of this pipeline is known to be gone (the membership timed it out, or it left): the
  // batch awaited now, and every later call, fails with `why` at once instead of waiting for a
  // reply that cannot come. Thread-safe.
  void abandon(const std::string& why);

 private:
  struct Pending {
    std::uint64_t request = 0;
    int rows = 0;            // logits rows expected
    std::string during;      // "token 17 of sequence 2", for messages
    std::vector<float> logits;  // the local result when there is no chain
  };
  void wait_for_logits(const Pending& pending, std::vector<float>& logits);
  void send_control(StageHeader& header, const std::string& what);
  // The first node (followers, then the chain) that does not answer a ping, or null.
  const ChainNode* find_silent_node(std::string& why);
  // The chain's index of a peer, or -1.
  int node_index(PeerId peer) const;
  [[noreturn]] void fail_node(const ChainNode& node, const std::string& during,
                              const std::string& why) const;
  void throw_if_abandoned() const;

  engine::Stage stage_;
  Transport& transport_;
  std::vector<ChainNode> chain_;
  std::vector<ChainNode> followers_;
  ClusterPipelineOptions options_;
  std::uint64_t next_request_ = 1;
  std::uint64_t settled_request_ = 0;  // replies to requests up to this one are stale
  std::deque<Pending> pending_;        // submitted, not collected, oldest first
  std::vector<float> hidden_;          // [n_tokens, n_embd]
  std::vector<std::uint8_t> out_;
  std::atomic<bool> abandoned_{false};
  mutable std::mutex abandon_mutex_;
  std::string abandon_reason_;  // under abandon_mutex_
};

}  // namespace herd::cluster
