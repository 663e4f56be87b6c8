// engine::Pipeline across machines, on the coordinator: runs the coordinator's own first stage
// (layer 0 up, with the token embedding), sends the hidden state down a chain of StageServers,
// and waits for the logits from the last one. A node that dies or stops answering turns into a
// herd::Error naming it ("node 'b' (10.0.0.2:7002) stopped answering during token 17") within
// reply_timeout (+ a probe), never a hang.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cluster/transport.h"
#include "engine/pipeline.h"
#include "engine/stage.h"

namespace herd::cluster {

struct StageMessage;

// One remote stage, in layer order.
struct ChainNode {
  std::string name;   // the node's id, e.g. "b"
  std::string where;  // where it is, for people, e.g. "10.0.0.2:7002"
  PeerId peer = 0;    // connected on the coordinator's transport
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
  // transport. Pings every node (Error naming one that does not answer).
  ClusterPipeline(std::shared_ptr<const model::Model> first, int n_ctx, ThreadPool& pool,
                  Transport& transport, std::vector<ChainNode> chain,
                  ClusterPipelineOptions options = {});

  void forward(std::span<const std::int32_t> tokens, std::int32_t pos0, bool all_logits,
               std::vector<float>& logits) override;
  void truncate(std::int32_t n_keep) override;
  std::int32_t n_ctx() const override { return stage_.n_ctx(); }
  std::int32_t n_vocab() const override { return stage_.model().n_vocab(); }

  // Pings the nodes in order; Error naming the first that does not answer within probe_timeout.
  void check_chain();
  // Tells the chain to stop serving (each node passes it on). Best effort: errors are logged.
  void shutdown();

 private:
  void wait_for_logits(int n_tokens, std::int32_t pos0, bool all_logits,
                       std::vector<float>& logits);
  // The first node that does not answer a ping, or -1 when all do.
  int find_silent_node(std::string& why);
  int node_index(PeerId peer) const;
  [[noreturn]] void fail_node(int index, const std::string& during, const std::string& why) const;

  engine::Stage stage_;
  Transport& transport_;
  std::vector<ChainNode> chain_;
  ClusterPipelineOptions options_;
  std::uint64_t next_request_ = 1;
  std::uint64_t settled_request_ = 0;  // replies to requests up to this one are stale
  std::vector<float> hidden_;          // [n_tokens, n_embd]
  std::vector<std::uint8_t> out_;
};

}  // namespace herd::cluster
