// Node: a worker's life. It waits for the coordinator's assignment (a layer range, maybe a
// tensor-parallel share), fetches and loads those layers, connects to its neighbours and serves
// its stage until the coordinator assigns a new plan (after a node was lost or joined) or the
// node stops; then it takes the next assignment. A failed assignment is reported through
// /v1/node/state and leaves the worker ready for the next one, so a cluster heals without
// restarting its workers.
#include <fmt/format.h>

#include "cluster/node_impl.h"
#include "cluster/runtime/stage_server.h"
#include "cluster/weights/weight_fetcher.h"
#include "util/error.h"
#include "util/log.h"

namespace herd::cluster {

namespace {

bool same_layers(const Assignment& a, const Assignment& b) {
  return a.model_hash == b.model_hash && a.range.first == b.range.first &&
         a.range.last == b.range.last && a.tensor_rank == b.tensor_rank &&
         a.tensor_weights == b.tensor_weights;
}

}  // namespace

void Node::run_worker() {
  auto& d = *impl_;
  std::uint64_t served = 0;  // the epoch of the last assignment taken
  std::optional<Assignment> loaded;
  for (;;) {
    Assignment a;
    {
      std::unique_lock lock(mutex_);
      if (served == 0) status_ = "waiting for the coordinator's assignment";
      d.cv.wait(lock, [&] {
        return stopping_ || d.promote ||
               (d.assignment.has_value() && d.assignment->epoch != served);
      });
      if (stopping_ || d.promote) return;
      a = *d.assignment;
      served = a.epoch;
      d.leave_stage = false;
      d.worker = WorkerState{"fetching", a.epoch, "", ""};
      status_ = fmt::format("fetching layers {}-{}", a.range.first, a.range.last - 1);
    }
    try {
      if (!loaded || !same_layers(*loaded, a)) {
        loaded.reset();
        load_assignment(a);
        loaded = a;
      }
      serve_assignment(a);
    } catch (const std::exception& e) {
      loaded.reset();
      log::error("node {}: plan {}: {}", id_, a.epoch, e.what());
      std::lock_guard lock(mutex_);
      if (d.worker.epoch == a.epoch) {
        d.worker.state = "failed";
        d.worker.error = e.what();
      }
      status_ = fmt::format("failed: {} (waiting for the coordinator's next plan)", e.what());
    }
    d.transport.reset();
    if (stopping_ || d.promote) return;
  }
}

void Node::load_assignment(const Assignment& a) {
  auto& d = *impl_;
  FetchOptions fo;
  fo.host = a.coordinator_host;
  fo.port = a.coordinator_port;
  fo.model_hash = a.model_hash;
  fo.range = a.range;
  fo.data_dir = options_.data_dir.empty()
                    ? std::filesystem::path(std::getenv("HOME") ? std::getenv("HOME") : "/tmp") /
                          ".cache" / "herd" / id_
                    : options_.data_dir;
  fo.auth = d.http_auth;
  FetchResult fetched = fetch_shard(fo);
  auto shard = std::make_shared<const gguf::File>(gguf::File::open(fetched.path.string()));
  std::optional<model::TensorShare> share;
  if (a.tensor_weights.size() > 1) share = model::TensorShare{a.tensor_rank, a.tensor_weights};
  auto model = model::Model::load(shard, a.range, share);
  if (share) log::info("node {}: tensor parallel, {}", id_, model->slice().describe());
  std::lock_guard lock(mutex_);
  model_ = std::move(model);
}

void Node::serve_assignment(const Assignment& a) {
  auto& d = *impl_;
  // A fresh transport per plan: nothing of the last one (its peers, late messages) carries over.
  d.transport.reset();
  d.transport = std::make_unique<UcxTransport>(data_plane_options(options_.host));
  std::pair<std::string, std::string> links;
  std::vector<std::string> group;
  {
    std::unique_lock lock(mutex_);
    if (d.worker.epoch != a.epoch) return;  // a newer plan came meanwhile
    d.worker.address_hex = hex_of(d.transport->local_address());
    d.worker.state = "loaded";
    status_ = fmt::format("layers {}-{} loaded, waiting for the chain", a.range.first,
                          a.range.last - 1);
    d.cv.wait(lock, [&] {
      return stopping_ || d.leave_stage || d.promote ||
             (d.connect.has_value() && d.connect_epoch == a.epoch);
    });
    if (stopping_ || d.leave_stage || d.promote) return;
    links = *d.connect;
    group = d.connect_group;
  }
  // links.first: whom this node answers — the coordinator, or its group's leader when it is a
  // tensor-parallel follower (rank > 0).
  StageLinks sl;
  sl.coordinator = d.transport->connect(
      hex_bytes(links.first), a.tensor_rank > 0 ? "its group's leader" : "the coordinator");
  if (!links.second.empty())
    sl.next = d.transport->connect(hex_bytes(links.second), "the next stage");
  // A rank of a tensor-parallel group: the leader (rank 0) passes every batch on to the
  // others; all of them add up their partial sums with each other.
  const bool tensor = a.tensor_weights.size() > 1;
  std::unique_ptr<TransportReducer> reducer;
  if (tensor) {
    const int n = static_cast<int>(a.tensor_weights.size());
    if (static_cast<int>(group.size()) != n)
      fail("the coordinator sent {} addresses for a tensor-parallel group of {}", group.size(), n);
    ReduceGroup rg{a.tensor_rank, {}, n};
    for (int r = 0; r < n; ++r) {
      if (r == a.tensor_rank) continue;
      rg.peers.push_back(
          d.transport->connect(hex_bytes(group[r]), fmt::format("tensor rank {} of the group", r)));
      if (a.tensor_rank == 0) sl.followers.push_back(rg.peers.back());
    }
    sl.follower = a.tensor_rank > 0;
    reducer = std::make_unique<TransportReducer>(*d.transport, rg);
  }
  std::shared_ptr<const model::Model> model;
  {
    std::lock_guard lock(mutex_);
    model = model_;
  }
  StageServer server(model, a.n_ctx, *d.pool, *d.transport, sl, StageServerOptions{}, a.n_seqs,
                     reducer.get());
  {
    std::lock_guard lock(mutex_);
    if (d.worker.epoch == a.epoch) d.worker.state = "serving";
    status_ = fmt::format("serving layers {}-{} (plan {})", a.range.first, a.range.last - 1,
                          a.epoch);
  }
  ready_ = true;
  server.serve(&d.leave_stage);
  if (reducer)
    log::info("node {}: {} all-reduces took {:.3f} s (exchange and waiting for other ranks)", id_,
              reducer->reductions(), reducer->seconds());
  std::lock_guard lock(mutex_);
  if (d.worker.epoch == a.epoch) d.worker.state = "stopped";
}

}  // namespace herd::cluster
