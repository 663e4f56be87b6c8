// Node's private state, shared by node.cpp (lifecycle, control plane) and node_stages.cpp
// (the coordinator's setup and the worker's stage). Not part of the public API.
#pragma once

#include <httplib.h>

#include <condition_variable>
#include <deque>
#include <set>

#include "cluster/control/auth.h"
#include "cluster/runtime/cluster_pipeline.h"
#include "cluster/runtime/transport_reducer.h"
#include "cluster/control/discovery.h"
#include "cluster/weights/file_hash.h"
#include "cluster/node.h"
#include "cluster/transport/ucx_transport.h"
#include "cluster/weights/weight_auth.h"
#include "cluster/weights/weight_server.h"
#include "engine/local_pipeline.h"
#include "util/energy.h"
#include "util/thread_pool.h"

namespace herd::cluster {

// What the coordinator tells a worker (POST /v1/node/assign).
struct Assignment {
  // The coordinator's plan number: a new plan's assignment replaces an older one, and a worker
  // answers connect messages and state queries for its current one only.
  std::uint64_t epoch = 0;
  std::string coordinator_host;
  int coordinator_port = 0;  // its cluster (weights) port
  int coordinator_api_port = 0;
  std::string model_hash;
  model::LayerRange range;
  int n_ctx = 0;
  int n_seqs = 1;
  // Tensor parallelism: this node is rank tensor_rank (> 0: a follower of the coordinator) of a
  // group whose ranks have these weights; empty for a pipeline stage.
  int tensor_rank = 0;
  std::vector<double> tensor_weights;
};

// A worker's progress, reported by GET /v1/node/state.
struct WorkerState {
  std::string state = "idle";  // idle, fetching, loaded, serving, stopped, failed
  std::uint64_t epoch = 0;     // the assignment this state is of
  std::string error;
  std::string address_hex;  // its transport address once loaded
};

struct Node::Impl {
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<engine::LocalPipeline> local;
  int n_ctx = 0;   // per sequence
  int n_seqs = 1;  // sequences served at once (the scheduler's --parallel)

  // Control plane.
  std::unique_ptr<Secret> secret;
  std::shared_ptr<HttpAuth> http_auth;
  ReplayGuard guard;
  std::unique_ptr<Discovery> discovery;
  std::unique_ptr<Membership> membership;  // under Node::mutex_
  std::uint64_t seq = 0;
  httplib::Server http;
  std::thread http_thread;
  std::thread control_thread;

  // For the dashboard (GET /v1/cluster), under Node::mutex_.
  NodeInfo self;  // a node serving alone (a clustered one's is in membership)
  PowerSampler power;
  nlohmann::json links = nlohmann::json::array();  // {"a", "b", "latency_s", "bandwidth"}
  std::deque<nlohmann::json> events;               // the latest membership events, oldest first
  std::map<std::string, nlohmann::json> departed;  // members that left: id -> node JSON + why
  std::map<std::string, NodeInfo> known;           // every member seen, by id

  // Coordinator.
  std::shared_ptr<WeightServer> weights;
  std::thread setup_thread;
  std::unique_ptr<UcxTransport> transport;
  std::unique_ptr<TransportReducer> reducer;  // the coordinator's, in a tensor-parallel group
  std::unique_ptr<ClusterPipeline> cluster_pipeline;
  std::optional<Plan> plan;  // under Node::mutex_
  std::uint64_t epoch = 0;   // plans deployed so far (Assignment::epoch)
  ModelShape shape;          // of the model, for every plan
  std::int64_t n_vocab = 0;
  // Healing (node_recovery.cpp). A node joined, or one that failed answers again: the scheduler
  // is asked for a quiet moment to re-plan.
  std::atomic<bool> want_rebuild{false};
  // Members that stopped answering during a failure, left out of plans until they answer again
  // (a killed node's heartbeats time out only after seconds; a restarted one may come back
  // sooner, with no membership event). Under Node::mutex_.
  std::set<std::string> suspects;
  std::string recovering;  // what a rebuild is doing now ("" when none), under Node::mutex_
  // A holder of the model that another holder coordinates: it serves as a worker until the
  // membership names it coordinator (promote: its worker loop ends and it takes over).
  bool standby = false;  // under Node::mutex_
  std::atomic<bool> promote{false};

  // Worker.
  std::thread stage_thread;
  std::condition_variable cv;  // with Node::mutex_: assignment / connect info arrived, stopping
  std::optional<Assignment> assignment;
  std::optional<std::pair<std::string, std::string>> connect;  // coordinator, next (hex; "" = none)
  std::uint64_t connect_epoch = 0;
  // Set by a new assignment (or stop()): the stage being served ends and the worker takes it.
  std::atomic<bool> leave_stage{false};
  std::vector<std::string> connect_group;  // tensor parallelism: every rank's address (hex)
  WorkerState worker;
};

// The data plane listens only on the interface of the address the user asked the node to bind.
UcxOptions data_plane_options(const std::string& host);
// Transport addresses travel as hex in the control plane's JSON.
std::vector<std::uint8_t> hex_bytes(const std::string& hex);
std::string hex_of(const std::vector<std::uint8_t>& bytes);

// Polls the /v1/node/state of the plan's workers (stages 1..) until each reports `wanted` for
// assignment `epoch`;
// their transport addresses (hex), by stage ("" for stage 0). Error when one fails, or after
// 600 s. node_stages.cpp.
std::vector<std::string> wait_for_workers(const HttpAuth& auth,
                                          const std::map<std::string, NodeInfo>& infos,
                                          const Plan& plan, std::uint64_t epoch,
                                          const char* wanted, const std::atomic<bool>& stopping);

// Probes the link from this host to each {"id", "host", "port"} of `targets`; one
// {"id", "latency_s", "bandwidth"} per link measured (node_links.cpp).
nlohmann::json probe_targets(const std::string& local_host, const nlohmann::json& targets);

// Logs membership events and remembers them, and the members that left, for the dashboard
// (node_view.cpp). Call
// under Node::mutex_ with the events Membership returned.
void record_member_events(Node::Impl& d, const std::string& self_id,
                          const std::vector<MemberEvent>& events);

// Node's control-plane helpers (node.cpp) used by node_stages.cpp.
std::int64_t wall_ms();
nlohmann::json post_signed(const HttpAuth& auth, const std::string& host, int port,
                           const std::string& path, const nlohmann::json& body);
nlohmann::json get_signed(const HttpAuth& auth, const std::string& host, int port,
                          const std::string& path);

}  // namespace herd::cluster
