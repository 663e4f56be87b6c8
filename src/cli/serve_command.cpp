// herd serve: run a node: the OpenAI-compatible API, and with peers a member of a cluster.
// A worker (no --model) forwards completions to the coordinator's API (see api/server.h).
#include <fmt/format.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <ctime>

#include "api/node_backend.h"
#include "api/server.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cluster/node.h"
#include "cluster/placement/placement.h"
#include "util/error.h"

namespace herd::cli {
namespace {

struct ServeOptions {
  cluster::NodeOptions node;
  std::string peers;
  std::string memory_limit;
  std::string api_key;
  int shutdown_timeout_s = 30;
};

// The first SIGTERM/SIGINT: a coordinator takes no new request and finishes those it has; a
// worker leaves the cluster and waits until the coordinator has moved its layers to the others.
// At most `seconds`; a second signal ends the wait at once.
void shut_down_gracefully(cluster::Node& node, api::Backend& backend, sigset_t& signals,
                          int seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  std::function<bool()> busy;
  if (node.is_coordinator() && node.ready()) {
    backend.stop_admitting();
    if (backend.idle()) return;
    fmt::print(stderr,
               "herd serve: finishing the requests in progress (at most {} s; signal again to "
               "stop at once)\n",
               seconds);
    busy = [&] { return !backend.idle(); };
  } else if (node.clustered() && !node.is_coordinator()) {
    node.announce_leave();
    if (!node.serving_stage()) return;
    fmt::print(stderr,
               "herd serve: leaving the cluster, waiting for the coordinator to move this node's "
               "layers (at most {} s; signal again to stop at once)\n",
               seconds);
    busy = [&] { return node.serving_stage(); };
  } else {
    return;
  }
  while (busy() && std::chrono::steady_clock::now() < until) {
    timespec tick{0, 100'000'000};
    if (sigtimedwait(&signals, nullptr, &tick) > 0) return;
  }
}

int run_serve(ServeOptions o) {
  if (!o.peers.empty()) {
    std::size_t start = 0;
    while (start <= o.peers.size()) {
      std::size_t comma = o.peers.find(',', start);
      std::string p =
          o.peers.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!p.empty()) o.node.peers.push_back(p);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  if (!o.memory_limit.empty()) o.node.memory_limit = cluster::parse_byte_size(o.memory_limit);
  if (o.api_key.empty()) {
    if (const char* env = std::getenv("HERD_API_KEY")) o.api_key = env;
  }
  // Block the signals before any thread starts, so that only sigtimedwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  cluster::Node node(o.node);
  node.start();
  api::NodeBackend backend(node);
  api::ApiOptions ao;
  ao.host = o.node.host;
  ao.port = o.node.api_port;
  ao.api_key = o.api_key;
  ao.upstream = [&node] { return node.coordinator_api(); };
  // Every running and queued request holds a connection thread (mostly asleep on its ticket).
  const int parallel = o.node.parallel > 0 ? o.node.parallel : cluster::kMaxDefaultParallel;
  const int queue = o.node.max_queue >= 0 ? o.node.max_queue : 2 * parallel;
  ao.threads = std::max(8, parallel + queue + 4);
  api::ApiServer server(backend, ao);
  const int port = server.start();
  fmt::print(stderr, "herd serve: node '{}' API on http://{}:{}{}\n", node.id(), o.node.host, port,
             node.clustered() ? fmt::format(", cluster port {}", o.node.cluster_port) : "");
  bool reported = false;
  int rc = 0;
  for (;;) {
    timespec tick{0, 200'000'000};
    if (sigtimedwait(&signals, nullptr, &tick) > 0) {
      shut_down_gracefully(node, backend, signals, o.shutdown_timeout_s);
      break;
    }
    if (node.ready() && !reported) {
      fmt::print(stderr, "herd serve: ready\n");
      reported = true;
      // The scheduler starts now, not with the first request: a cluster heals even while idle.
      if (node.is_coordinator()) backend.scheduler_metrics();
    }
    if (node.failed()) {
      fmt::print(stderr, "herd serve: {}\n", node.status());
      rc = 1;
      break;
    }
  }
  server.stop();
  backend.stop();  // the scheduler lets go of the pipeline before the node tears it down
  node.stop();
  return rc;
}

}  // namespace

CommandFn add_serve_command(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  auto* cmd = app.add_subcommand("serve", "Serve the OpenAI API; with peers, join a cluster");
  auto& n = o->node;
  cmd->add_option("-m,--model", n.model_path,
                  "GGUF model: this node coordinates (the lowest --name of the nodes that have "
                  "one), or stands by to take over if the coordinator is lost")
      ->check(CLI::ExistingFile);
  cmd->add_option("--api-host,--host", n.host, "Address to bind and announce (API and cluster)")
      ->capture_default_str();
  cmd->add_option("--api-port", n.api_port, "HTTP API port")->capture_default_str();
  cmd->add_option("--cluster-port", n.cluster_port, "Cluster port (UDP control, TCP weights)")
      ->capture_default_str();
  cmd->add_option("--peers", o->peers, "Other nodes' cluster addresses: HOST:PORT,...");
  cmd->add_flag("--multicast", n.multicast, "Also discover nodes by multicast on the LAN");
  cmd->add_option("--secret-file", n.secret_file, "Cluster secret (mode 600), same on every node");
  cmd->add_option("--memory-limit", o->memory_limit,
                  "Memory this node offers for weights + KV cache, e.g. 2G, 512M");
  cmd->add_option("-t,--threads", n.threads, "Compute threads (default: one per core)");
  cmd->add_option("--name", n.id, "Node id (default: hostname-clusterport)");
  cmd->add_option("--data-dir", n.data_dir, "Where shards are kept (default ~/.cache/herd/<id>)");
  cmd->add_option("-c,--ctx", n.n_ctx,
                  "Context length of each sequence (default: the model's, at most 4096)");
  cmd->add_option("--parallel", n.parallel,
                  "Requests generated at once, each with its own KV cache slot (default: as many "
                  "as half the free memory holds, at most 8)")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--batch-tokens", n.batch_tokens,
                  "Most tokens in one step: decode tokens of the running requests plus prompt "
                  "chunks")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  cmd->add_option("--max-queue", n.max_queue,
                  "Requests that may wait for a free slot; beyond, HTTP 429 (default: 2 x "
                  "parallel)")
      ->check(CLI::Range(0, 100000));
  cmd->add_option("--parallel-mode", n.parallel_mode,
                  "Coordinator: how nodes share the model: pipeline (each a range of layers, in "
                  "turn), tensor (each a share of every layer, all at once: faster on fast "
                  "links), auto (measure the links and pick the fastest of these and of "
                  "pipelines of tensor-parallel groups)")
      ->check(CLI::IsMember({"auto", "pipeline", "tensor"}))
      ->capture_default_str();
  cmd->add_option("--wait-nodes", n.wait_nodes, "Coordinator: nodes (itself included) to wait for")
      ->capture_default_str();
  cmd->add_option("--wait-timeout", n.wait_timeout_s, "Seconds to wait for them")
      ->capture_default_str();
  cmd->add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY' (or HERD_API_KEY)");
  cmd->add_option("--shutdown-timeout", o->shutdown_timeout_s,
                  "On SIGTERM/SIGINT, seconds to finish the requests in progress (coordinator) or "
                  "to hand this node's layers over to the others (worker); a second signal stops "
                  "at once")
      ->check(CLI::Range(0, 3600))
      ->capture_default_str();
  return [o] { return run_serve(*o); };
}

}  // namespace herd::cli
