// A cluster of `herd serve` processes on 127.0.0.1, started by this process (herd demo, herd
// bench --nodes): free ports, one data dir and log per node under a temporary folder, and every
// child stopped by PID when the object goes away (also if this process dies: PR_SET_PDEATHSIG).
// Node 0 holds the model and coordinates; the others join it through --peers.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/model.h"

namespace herd::cli {

// The --memory-limit that makes a placement use all `nodes` nodes for `model` at context n_ctx:
// 95% of (weights + KV cache) / (nodes - 1), so no nodes - 1 of them hold it and all of them do,
// with room to spare for whole layers. 0 for one node (no limit).
std::uint64_t split_memory_limit(const model::Model& model, int n_ctx, int nodes);

// A port on 127.0.0.1 free for both TCP and UDP right now (the cluster port uses both).
// Throws herd::Error when none is found.
int free_local_port();

struct LocalClusterOptions {
  int nodes = 1;
  int threads_per_node = 1;
  int n_ctx = 256;
  std::uint64_t memory_limit = 0;  // per node, for weights + KV cache; 0: no --memory-limit
  int parallel = 0;                // sequences served at once (--parallel); 0: the node's default
  std::string parallel_mode;       // the coordinator's --parallel-mode; empty: its default
  std::string log_level = "info";
};

class LocalCluster {
 public:
  // Creates the temporary folder (logs, data dirs, the shared secret); starts nothing.
  explicit LocalCluster(LocalClusterOptions options);
  // Stops every node and removes the folder unless keep_files() was called.
  ~LocalCluster();
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  // Spawns the nodes (this executable's `serve`); node 0 gets `model`.
  void start(const std::filesystem::path& model);
  // Polls the coordinator's /health until it answers 200. Throws herd::Error naming the log to
  // read when the coordinator exits or `seconds` pass.
  void wait_ready(int seconds);
  // SIGTERM, up to 5 s, then SIGKILL: every child is gone when this returns. Idempotent.
  void stop();
  // Per node, for weights + KV cache (--memory-limit); takes effect at start().
  void set_memory_limit(std::uint64_t bytes) { options_.memory_limit = bytes; }
  // Leave the folder (logs) in place, e.g. after a failure the user should look into.
  void keep_files() { keep_ = true; }

  int api_port(int node) const { return api_ports_.at(node); }
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path log_path(int node) const;

 private:
  LocalClusterOptions options_;
  std::filesystem::path dir_;
  std::filesystem::path secret_;
  std::vector<int> api_ports_, cluster_ports_;
  std::vector<pid_t> pids_;
  bool keep_ = false;
};

}  // namespace herd::cli
