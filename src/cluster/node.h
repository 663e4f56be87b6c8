// The `herd serve` daemon: one object that owns everything a node process has and wires the
// cluster pieces together. No HTTP API here (api/ sits above cluster/): the API asks the node for
// its pipeline, its state and its view of the cluster.
//
// Roles. A node started with --model is the coordinator when the membership names it (the
// lowest id among the holders, or the one coordinating now; a holder that is not named serves
// as a worker, on standby to take over: docs/cluster.md). The coordinator waits for the expected
// members, plans placement, serves the weights, tells each worker its layer range, and, once
// every worker serves its stage, runs a ClusterPipeline (its own stage first: it always holds layer 0, which
// embeds the tokens). A worker fetches its shard into its data dir, loads it, opens a UCX
// transport and runs a StageServer. Alone (no peers, --wait-nodes 1) a coordinator runs the whole
// model in a LocalPipeline and never opens a cluster socket.
//
// Control plane: UDP on cluster_host:cluster_port (signed heartbeats, discovery.h); HTTP on the
// same TCP port (weights, and /v1/node/{assign,connect,state} signed with weight_auth.h).
// Sequence: assign -> worker fetches + loads, state "loaded" with its transport address ->
// connect (coordinator's and next stage's addresses) -> worker state "serving" -> the
// coordinator connects and pings the chain -> ready.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cluster/control/membership.h"
#include "cluster/placement/placement.h"
#include "engine/pipeline.h"
#include "engine/pipeline_recovery.h"
#include "engine/scheduler.h"
#include "model/chat_template.h"
#include "model/model.h"
#include "model/tokenizer.h"

namespace herd::cluster {

struct NodeOptions {
  std::string model_path;          // set: this node coordinates
  std::string id;                  // empty: "<hostname>-<cluster_port>"
  std::string name;                // empty: the hostname
  std::string host = "127.0.0.1";  // address bound and announced (API, cluster, data plane)
  int api_port = 8080;             // announced so that workers can forward API requests
  int cluster_port = 7070;
  std::vector<std::string> peers;  // "HOST:PORT" of other nodes' cluster ports
  bool multicast = false;
  std::filesystem::path secret_file;  // required as soon as there is a cluster
  std::uint64_t memory_limit = 0;     // bytes offered for weights + KV cache; 0: MemAvailable
  int threads = 0;
  std::filesystem::path data_dir;  // shards; empty: ~/.cache/herd/<id>
  int n_ctx = 0;                   // 0: the model's, at most 4096 (per sequence)
  int parallel = 0;                // sequences served at once; 0: as many as memory allows, <= 8
  int batch_tokens = 512;          // most tokens in one scheduler step
  int max_queue = -1;              // requests waiting beyond the running ones; < 0: 2 x parallel
  // Coordinator: how the members share the model: "pipeline" (layer ranges, one after another),
  // "tensor" (every node a share of every layer, all at once) or "auto" (plan_auto: the fastest
  // of those and of pipelines of tensor-parallel groups, from the measured links).
  std::string parallel_mode = "auto";
  int wait_nodes = 1;              // coordinator: members (itself included) to wait for
  int wait_timeout_s = 60;
};

// Parses "2G", "512M", "1.5GiB", "1000000" into bytes. Throws InvalidArgument.
std::uint64_t parse_byte_size(const std::string& text);

// Moves the coordinator to the front of a plan (it must hold layer 0): swaps stages when their
// memory allows, or takes layer 0 itself when the plan left it out. Throws Error when impossible.
void put_coordinator_first(Plan& plan, const std::string& coordinator_id,
                           const std::vector<std::uint64_t>& layer_bytes,
                           std::uint64_t usable_bytes);

struct Assignment;

// A clustered coordinator heals (node_recovery.cpp): as the scheduler's PipelineRecovery it
// re-plans over the members still alive when a node is lost, and moves to a better plan at a
// quiet moment when one joins.
class Node final : public engine::PipelineRecovery {
 public:
  explicit Node(NodeOptions options);
  ~Node() override;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Opens sockets and starts the node's threads; the cluster forms in the background (ready()).
  // Throws herd::Error for bad options, an unreadable model or secret, or a port in use.
  void start();
  // Tells the cluster (Leave, stage shutdown) and joins every thread. Idempotent.
  void stop();
  // A worker's graceful leave (SIGTERM): tells the cluster it goes and sends no more heartbeats,
  // so that the coordinator moves its layers to the others at a quiet moment (nothing in flight
  // is lost); serving_stage() stays true until the coordinator has released its stage. Then
  // stop().
  void announce_leave();
  bool serving_stage() const;

  bool clustered() const { return clustered_; }
  // Coordinates now: it deployed a plan and serves the API's requests. A node started with
  // --model coordinates when the membership says so (docs/cluster.md); another one that holds the
  // file waits as a standby worker and takes over when the coordinator is lost.
  bool is_coordinator() const { return coordinating_.load(); }
  bool holds_model() const { return !options_.model_path.empty(); }
  const std::string& id() const { return id_; }
  bool ready() const { return ready_.load(); }
  bool failed() const;
  std::string status() const;  // "waiting for 2 more node(s)", "ready", "failed: ..."

  // The coordinator's API "host:port" when another node coordinates; nullopt on the coordinator
  // itself and while no coordinator is known.
  std::optional<std::string> coordinator_api() const;
  nlohmann::json cluster_view() const;
  std::optional<Plan> placement() const;

  // Coordinator, once ready(). The pipeline may change after a node is lost or joins: the one
  // scheduler that uses it gets the new one from rebuild().
  engine::Pipeline& pipeline();
  // What the scheduler asks when the pipeline fails or could be better; null for a node serving
  // alone (nothing to heal).
  engine::PipelineRecovery* recovery() { return clustered_ && is_coordinator() ? this : nullptr; }
  bool wants_rebuild() const override;
  engine::Pipeline& rebuild(std::exception_ptr failure) override;
  // Positions per sequence (the same for every plan), once ready().
  int n_ctx() const;
  // How the coordinator's scheduler runs (parallel resolved from memory), once ready().
  engine::SchedulerOptions scheduling() const;
  const model::Tokenizer& tokenizer() const { return *tokenizer_; }
  const model::ChatTemplate& chat_template() const { return *chat_; }
  std::string model_id() const;
  std::string model_file_name() const;
  // The coordinator's model file: {"architecture", "file_bytes", "name"} (empty on a worker).
  nlohmann::json model_details() const;

  // Public for the implementation files (node_*.cpp).
  struct Impl;

 private:
  void start_local();
  void start_cluster();    // node_stages.cpp
  void install_routes();   // node_stages.cpp: /v1/node/* on the cluster HTTP server
  void control_loop();     // node_stages.cpp: heartbeats, discovery, membership
  void run_coordinator();  // node_stages.cpp
  // node_stages.cpp: the plan over `infos` (links measured; sets the sequences served at once)
  // and setting it up: the workers' assignments, the chain, this node's own stage.
  Plan plan_for(const std::map<std::string, NodeInfo>& infos);
  void deploy(const std::map<std::string, NodeInfo>& infos, const Plan& plan);
  // node_recovery.cpp: the members that answer now (the failed ones become suspects), ...
  std::map<std::string, NodeInfo> live_members();
  // ... this node's pipeline taken down (before a new plan is deployed), ...
  void tear_down_pipeline(bool tell_chain);
  void send_leave(const std::string& reason);
  // ... reactions to membership events (under mutex_), and the coordinator's watch, after the
  // first plan, for suspects that answer again.
  void react_to_events(const std::vector<MemberEvent>& events);
  void watch_suspects();
  // node_tensor.cpp: the coordinator's setup of a plan with tensor-parallel groups (a pipeline
  // of groups; the coordinator leads the first).
  void run_groups(const std::map<std::string, NodeInfo>& infos, const Plan& plan);
  // node_links.cpp: every pair of members' link, measured by UDP probes.
  LinkTable measure_links(const std::map<std::string, NodeInfo>& infos);
  void run_worker();       // node_worker.cpp: takes assignments until the node stops
  void load_assignment(const Assignment& a);
  void serve_assignment(const Assignment& a);
  void set_status(std::string text);
  void set_failed(const std::string& why);
  // This node as members see it: address, memory offered, threads, CPU, measured bandwidth.
  NodeInfo describe_self() const;

  NodeOptions options_;
  std::string id_;
  bool clustered_ = false;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> leaving_{false};  // Leave sent: no more heartbeats
  std::atomic<bool> coordinating_{false};
  mutable std::mutex mutex_;
  std::string status_ = "starting";
  std::string failure_;

  std::shared_ptr<const gguf::File> file_;
  std::shared_ptr<model::Model> model_;
  std::unique_ptr<model::Tokenizer> tokenizer_;
  std::unique_ptr<model::ChatTemplate> chat_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace herd::cluster
