// Test harness: a pipeline chain in one process. The coordinator's transport belongs to the test
// thread; every remote stage gets its own Model::load(file, range), transport (own UCX worker,
// talking over 127.0.0.1, or the loopback fabric) and thread running a StageServer.
#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "cluster/runtime/cluster_pipeline.h"
#include "cluster/runtime/stage_server.h"
#include "cluster/transport/transport_loopback.h"
#include "cluster/transport/ucx_transport.h"
#include "gguf/reader.h"
#include "model/model.h"

namespace herd::cluster::testing {

enum class TransportKind { kUcx, kLoopback };

class StageChain {
 public:
  struct Node {
    std::string name;
    std::unique_ptr<Transport> transport;
    std::unique_ptr<ThreadPool> pool;
    std::unique_ptr<StageServer> server;
    std::atomic<bool> stop{false};
    std::atomic<bool> die{false};  // on stop: destroy the transport too (a crash)
    std::thread thread;
  };

  // `cuts`: layer boundaries; the coordinator holds [0, cuts[0]), node i [cuts[i], cuts[i+1]),
  // the last node up to n_layer. Nodes are named "b", "c", ...
  StageChain(std::shared_ptr<const gguf::File> file, std::vector<int> cuts, int n_ctx,
             TransportKind kind, ClusterPipelineOptions options = {}, int n_seqs = 1)
      : fabric_(std::make_shared<LoopbackFabric>()) {
    auto make = [&]() -> std::unique_ptr<Transport> {
      if (kind == TransportKind::kLoopback) return std::make_unique<LoopbackTransport>(fabric_);
      return std::make_unique<UcxTransport>();
    };
    coordinator_ = make();
    const int n_layer = model::Model::load(file)->n_layer();
    std::vector<int> bounds = cuts;
    bounds.push_back(n_layer);
    for (std::size_t i = 0; i + 1 < bounds.size(); ++i) {
      auto node = std::make_unique<Node>();
      node->name = std::string(1, static_cast<char>('b' + i));
      node->transport = make();
      node->pool = std::make_unique<ThreadPool>(1);
      nodes_.push_back(std::move(node));
    }
    std::vector<ChainNode> chain;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      Node& node = *nodes_[i];
      StageLinks links;
      links.coordinator = node.transport->connect(coordinator_->local_address(), "coordinator");
      if (i + 1 < nodes_.size()) {
        links.next = node.transport->connect(nodes_[i + 1]->transport->local_address(),
                                             "node '" + nodes_[i + 1]->name + "'");
      }
      auto range = model::LayerRange{bounds[i], bounds[i + 1]};
      node.server =
          std::make_unique<StageServer>(model::Model::load(file, range), n_ctx, *node.pool,
                                        *node.transport, links, StageServerOptions{}, n_seqs);
      const std::string where = "in-process stage " + std::to_string(i + 1);
      chain.push_back(ChainNode{
          node.name, where,
          coordinator_->connect(node.transport->local_address(), "node '" + node.name + "'")});
      node.thread = std::thread([&node] {
        node.server->serve(&node.stop);
        if (node.die) {
          node.server.reset();
          node.transport.reset();
        }
      });
    }
    pipeline_ = std::make_unique<ClusterPipeline>(
        model::Model::load(file, model::LayerRange{0, cuts.at(0)}), n_ctx, pool_, *coordinator_,
        std::move(chain), options, n_seqs);
  }

  ~StageChain() {
    for (auto& node : nodes_) node->stop = true;
    for (auto& node : nodes_) {
      if (node->thread.joinable()) node->thread.join();
    }
    pipeline_.reset();
  }

  ClusterPipeline& pipeline() { return *pipeline_; }
  Node& node(std::size_t i) { return *nodes_.at(i); }

  // The node stops serving; with `crash` its transport closes as a dead process's would.
  void halt(std::size_t i, bool crash) {
    Node& n = node(i);
    n.die = crash;
    n.stop = true;
    n.thread.join();
  }

 private:
  ThreadPool pool_{1};
  std::shared_ptr<LoopbackFabric> fabric_;
  std::unique_ptr<Transport> coordinator_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::unique_ptr<ClusterPipeline> pipeline_;
};

}  // namespace herd::cluster::testing
