// Node: the coordinator's setup of a tensor-parallel group (--parallel-mode tensor). Every
// member runs every layer with its share of the heads and feed-forward columns
// (model/tensor_split.h); the coordinator is rank 0: it embeds the tokens, passes each batch's
// hidden rows to the others (followers), adds up the group's partial sums (TransportReducer) and
// computes the logits.
#include <fmt/format.h>
#include <sys/mman.h>

#include "cluster/node_impl.h"
#include "util/error.h"
#include "util/log.h"

namespace herd::cluster {

using nlohmann::json;

void Node::run_tensor_group(const std::map<std::string, NodeInfo>& infos, const Plan& plan) {
  auto& d = *impl_;
  std::vector<double> weights;
  for (const Stage& s : plan.stages) weights.push_back(s.share);
  const auto hp = model::Model::load(file_, model::LayerRange{0, 1})->hparams();
  const model::TensorSlice mine = model::tensor_slice(hp, weights, 0);
  log::info("node {}: tensor parallel, {}", id_, mine.describe());
  model_ = model::Model::load(file_, std::nullopt, mine);

  // 1. Every follower fetches the model and binds its own slice.
  set_status("workers are fetching the model");
  for (std::size_t r = 1; r < plan.stages.size(); ++r) {
    const NodeInfo& w = infos.at(plan.stages[r].node_id);
    post_signed(*d.http_auth, w.address.host, w.address.cluster_port, "/v1/node/assign",
                {{"coordinator_host", options_.host},
                 {"coordinator_port", options_.cluster_port},
                 {"coordinator_api_port", options_.api_port},
                 {"model_hash", d.weights->model_hash()},
                 {"first", 0},
                 {"last", hp.n_layer},
                 {"n_ctx", d.n_ctx},
                 {"n_seqs", d.n_seqs},
                 {"tensor_rank", r},
                 {"tensor_weights", weights}});
  }
  std::vector<std::string> addresses =
      wait_for_workers(*d.http_auth, infos, plan, "loaded", stopping_);
  // 2. Followers answer to us; no next hop.
  d.transport = std::make_unique<UcxTransport>(data_plane_options(options_.host));
  const std::string self_address = hex_of(d.transport->local_address());
  // Every rank exchanges partial sums with every other: each gets all the ranks' addresses.
  addresses[0] = self_address;
  for (std::size_t r = 1; r < plan.stages.size(); ++r) {
    const NodeInfo& w = infos.at(plan.stages[r].node_id);
    post_signed(*d.http_auth, w.address.host, w.address.cluster_port, "/v1/node/connect",
                {{"coordinator", self_address}, {"next", ""}, {"group", addresses}});
  }
  wait_for_workers(*d.http_auth, infos, plan, "serving", stopping_);
  TensorGroup group;
  ReduceGroup reduce{0, {}, static_cast<int>(plan.stages.size())};
  for (std::size_t r = 1; r < plan.stages.size(); ++r) {
    const NodeInfo& w = infos.at(plan.stages[r].node_id);
    const std::string where = fmt::format("{}:{}", w.address.host, w.address.cluster_port);
    const PeerId peer = d.transport->connect(hex_bytes(addresses[r]),
                                             fmt::format("node '{}' ({})", w.id, where));
    group.followers.push_back({w.id, where, peer});
    reduce.peers.push_back(peer);
  }
  d.reducer = std::make_unique<TransportReducer>(*d.transport, reduce);
  group.reducer = d.reducer.get();
  d.cluster_pipeline = std::make_unique<ClusterPipeline>(model_, d.n_ctx, *d.pool, *d.transport,
                                                         std::vector<ChainNode>{},
                                                         ClusterPipelineOptions{}, d.n_seqs,
                                                         std::move(group));
  // Serving the followers the file pulled it into this process's page tables: drop those pages
  // (clean and file-backed; our slice faults its own back in on use).
  if (const MappedFile* m = file_->mapping()) {
    madvise(const_cast<std::uint8_t*>(m->data()), m->size(), MADV_DONTNEED);
  }
  ready_ = true;
  log::info("node {}: ready, tensor parallel over {} nodes", id_, plan.stages.size());
}

}  // namespace herd::cluster
