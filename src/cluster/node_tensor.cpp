// Node: the coordinator's setup of a plan with tensor-parallel groups (--parallel-mode tensor,
// or auto when the planner groups nodes on fast links): a pipeline of groups, each running its
// layers on all of its ranks at once, every rank holding its share of every layer
// (model/tensor_split.h). The coordinator leads group 0: it embeds the tokens, passes each
// batch's hidden rows to its followers, adds up partial sums with them (TransportReducer) and
// sends the result on to the next group's leader, which does the same; the last group's leader
// computes the logits.
#include <fmt/format.h>
#include <sys/mman.h>

#include "cluster/node_impl.h"
#include "util/error.h"
#include "util/log.h"

namespace herd::cluster {

using nlohmann::json;

namespace {

// A group of the plan: stage indices [first, last), the leader first.
struct GroupSpan {
  std::size_t first = 0, last = 0;
  std::vector<double> weights;  // each rank's share
};

std::vector<GroupSpan> group_spans(const Plan& plan) {
  std::vector<GroupSpan> spans;
  for (std::size_t i = 0; i < plan.stages.size(); ++i) {
    if (spans.empty() || plan.stages[i].group != plan.stages[spans.back().first].group) {
      spans.push_back({i, i, {}});
    }
    spans.back().last = i + 1;
    spans.back().weights.push_back(plan.stages[i].share);
  }
  return spans;
}

}  // namespace

void Node::run_groups(const std::map<std::string, NodeInfo>& infos, const Plan& plan) {
  auto& d = *impl_;
  const std::vector<GroupSpan> groups = group_spans(plan);
  HERD_CHECK(!groups.empty() && plan.stages[0].node_id == id_);
  std::optional<model::TensorShare> mine;
  if (groups[0].weights.size() > 1) mine = model::TensorShare{0, groups[0].weights};
  auto model = model::Model::load(
      file_, model::LayerRange{plan.stages[0].first_layer, plan.stages[0].last_layer}, mine);
  if (mine) log::info("node {}: tensor parallel, {}", id_, model->slice().describe());
  {
    std::lock_guard lock(mutex_);
    model_ = model;
  }

  // 1. Every worker fetches its group's layers and binds its slice.
  set_status("workers are fetching their layers");
  for (const GroupSpan& g : groups) {
    for (std::size_t i = g.first; i < g.last; ++i) {
      if (i == 0) continue;
      const Stage& s = plan.stages[i];
      const NodeInfo& w = infos.at(s.node_id);
      json assign = {{"epoch", d.epoch},
                     {"coordinator_host", options_.host},
                     {"coordinator_port", options_.cluster_port},
                     {"coordinator_api_port", options_.api_port},
                     {"model_hash", d.weights->model_hash()},
                     {"first", s.first_layer},
                     {"last", s.last_layer},
                     {"n_ctx", d.n_ctx},
                     {"n_seqs", d.n_seqs}};
      if (g.weights.size() > 1) {
        assign["tensor_rank"] = i - g.first;
        assign["tensor_weights"] = g.weights;
      }
      post_signed(*d.http_auth, w.address.host, w.address.cluster_port, "/v1/node/assign",
                  assign);
    }
  }
  std::vector<std::string> addresses =
      wait_for_workers(*d.http_auth, infos, plan, d.epoch, "loaded", stopping_);
  d.transport = std::make_unique<UcxTransport>(data_plane_options(options_.host));
  addresses[0] = hex_of(d.transport->local_address());

  // 2. Leaders answer to us and send on to the next leader; followers answer to their leader.
  //    Every rank of a group exchanges partial sums with every other: it gets their addresses.
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    const GroupSpan& g = groups[gi];
    std::vector<std::string> ranks(addresses.begin() + g.first, addresses.begin() + g.last);
    for (std::size_t i = g.first; i < g.last; ++i) {
      if (i == 0) continue;
      const NodeInfo& w = infos.at(plan.stages[i].node_id);
      const bool leader = i == g.first;
      const std::string next =
          leader && gi + 1 < groups.size() ? addresses[groups[gi + 1].first] : "";
      json connect = {{"epoch", d.epoch},
                      {"coordinator", leader ? addresses[0] : addresses[g.first]},
                      {"next", next}};
      if (g.weights.size() > 1) connect["group"] = ranks;
      post_signed(*d.http_auth, w.address.host, w.address.cluster_port, "/v1/node/connect",
                  connect);
    }
  }
  wait_for_workers(*d.http_auth, infos, plan, d.epoch, "serving", stopping_);

  // 3. Our own group's followers, and the chain of the other groups' leaders.
  auto chain_node = [&](std::size_t i) {
    const NodeInfo& w = infos.at(plan.stages[i].node_id);
    const std::string where = fmt::format("{}:{}", w.address.host, w.address.cluster_port);
    return ChainNode{w.id, where,
                     d.transport->connect(hex_bytes(addresses[i]),
                                          fmt::format("node '{}' ({})", w.id, where))};
  };
  TensorGroup group;
  if (groups[0].weights.size() > 1) {
    ReduceGroup reduce{0, {}, static_cast<int>(groups[0].weights.size())};
    for (std::size_t i = 1; i < groups[0].last; ++i) {
      group.followers.push_back(chain_node(i));
      reduce.peers.push_back(group.followers.back().peer);
    }
    d.reducer = std::make_unique<TransportReducer>(*d.transport, reduce);
    group.reducer = d.reducer.get();
  }
  std::vector<ChainNode> chain;
  for (std::size_t gi = 1; gi < groups.size(); ++gi) chain.push_back(chain_node(groups[gi].first));
  auto pipeline = std::make_unique<ClusterPipeline>(model, d.n_ctx, *d.pool, *d.transport,
                                                    std::move(chain), ClusterPipelineOptions{},
                                                    d.n_seqs, std::move(group));
  {
    std::lock_guard lock(mutex_);
    d.cluster_pipeline = std::move(pipeline);
  }
  // Serving the workers the file pulled it into this process's page tables: drop those pages
  // (clean and file-backed; our own weights fault theirs back in on use).
  if (const MappedFile* m = file_->mapping()) {
    madvise(const_cast<std::uint8_t*>(m->data()), m->size(), MADV_DONTNEED);
  }
  log::info("node {}: ready, {} group(s) over {} nodes ({}, plan {})", id_, groups.size(),
            plan.stages.size(), plan.mode, d.epoch);
}

}  // namespace herd::cluster
