// Node: the control plane loop, the coordinator's setup of the pipeline and the worker's stage.
// The sequence is described in node.h.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "cluster/transport/interface_address.h"
#include "cluster/placement/link_probe.h"
#include "cluster/node_impl.h"
#include "cluster/placement/shard_plan.h"
#include "cluster/runtime/stage_server.h"
#include "cluster/weights/weight_fetcher.h"
#include "util/cpu_features.h"
#include "util/error.h"
#include "util/log.h"
#include "util/memory_bandwidth.h"
#include "util/process_memory.h"

namespace herd::cluster {

using nlohmann::json;
using namespace std::chrono_literals;

UcxOptions data_plane_options(const std::string& host) {
  UcxOptions o;
  if (std::string dev = interface_for_address(host); !dev.empty()) o.net_devices = dev;
  return o;
}

std::vector<std::uint8_t> hex_bytes(const std::string& hex) {
  std::string raw;
  if (!from_hex(hex, raw)) fail_format("a transport address is not hex");
  return {raw.begin(), raw.end()};
}

std::string hex_of(const std::vector<std::uint8_t>& bytes) {
  return to_hex(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

void Node::set_status(std::string text) {
  std::lock_guard lock(mutex_);
  if (status_ != text) log::info("node {}: {}", id_, text);
  status_ = std::move(text);
}

void Node::start_cluster() {
  auto& d = *impl_;
  if (options_.secret_file.empty())
    fail_argument(
        "a cluster needs a shared secret: --secret-file FILE on every node (create one "
        "with: (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > FILE))");
  d.secret = std::make_unique<Secret>(load_secret(options_.secret_file));
  d.http_auth = std::make_shared<HttpAuth>(*d.secret);

  NodeInfo self = describe_self();
  d.membership = std::make_unique<Membership>(self);
  d.seq = make_sequence_start();

  DiscoveryConfig dc;
  dc.bind = {options_.host, static_cast<std::uint16_t>(options_.cluster_port)};
  for (const auto& p : options_.peers) dc.peers.push_back(parse_endpoint(p));
  dc.multicast = options_.multicast;
  d.discovery = std::make_unique<Discovery>(dc);

  install_routes();
  if (holds_model()) {
    FileHashCache hashes({}, d.pool->size());
    WeightServerOptions wo;
    wo.verify = d.http_auth->verifier();
    wo.response_auth = d.http_auth;
    d.weights = std::make_shared<WeightServer>(file_, hashes.get(*file_), wo);
    register_weight_routes(d.http, d.weights);
  }
  if (!d.http.bind_to_port(options_.host, options_.cluster_port))
    fail("cannot listen for cluster HTTP on {}:{} (TCP port in use?): pick another --cluster-port",
         options_.host, options_.cluster_port);
  d.http_thread = std::thread([this] { impl_->http.listen_after_bind(); });
  d.control_thread = std::thread([this] { control_loop(); });
  if (holds_model()) {
    d.setup_thread = std::thread([this] {
      try {
        run_coordinator();
      } catch (const std::exception& e) {
        set_failed(e.what());
      }
    });
  } else {
    d.stage_thread = std::thread([this] { run_worker(); });
  }
}

void Node::install_routes() {
  auto& d = *impl_;
  auto authorized = [this](const httplib::Request& req, httplib::Response& res) {
    std::string reason;
    if (impl_->http_auth->verify(req, reason)) return true;
    log::warn("node {}: refused {} {} from {}: {}", id_, req.method, req.path, req.remote_addr,
              reason);
    res.status = 401;
    res.set_content(json{{"error", reason}}.dump(), "application/json");
    return false;
  };
  d.http.Post("/v1/node/assign",
              [this, authorized](const httplib::Request& req, httplib::Response& res) {
                if (!authorized(req, res)) return;
                json j = json::parse(req.body, nullptr, false);
                if (j.is_discarded() || is_coordinator()) {
                  res.status = 400;
                  return;
                }
                Assignment a;
                a.epoch = j.value("epoch", std::uint64_t{0});
                a.coordinator_host = j.value("coordinator_host", "");
                a.coordinator_port = j.value("coordinator_port", 0);
                a.coordinator_api_port = j.value("coordinator_api_port", 0);
                a.model_hash = j.value("model_hash", "");
                a.range = {j.value("first", 0), j.value("last", 0)};
                a.n_ctx = j.value("n_ctx", 0);
                a.n_seqs = std::clamp(j.value("n_seqs", 1), 1, 256);
                a.tensor_rank = j.value("tensor_rank", 0);
                if (j.contains("tensor_weights") && j["tensor_weights"].is_array()) {
                  for (const auto& w : j["tensor_weights"])
                    if (w.is_number()) a.tensor_weights.push_back(w.get<double>());
                }
                {
                  std::lock_guard lock(mutex_);
                  if (impl_->assignment && impl_->assignment->epoch > a.epoch) {
                    res.status = 409;
                    res.set_content(json{{"error", "a newer plan was assigned"}}.dump(),
                                    "application/json");
                    return;
                  }
                  impl_->assignment = a;
                  impl_->connect.reset();
                  impl_->leave_stage = true;  // a stage served now ends: this one replaces it
                }
                impl_->cv.notify_all();
                res.set_content(json{{"state", "assigned"}}.dump(), "application/json");
              });
  d.http.Post("/v1/node/connect",
              [this, authorized](const httplib::Request& req, httplib::Response& res) {
                if (!authorized(req, res)) return;
                json j = json::parse(req.body, nullptr, false);
                if (j.is_discarded()) {
                  res.status = 400;
                  return;
                }
                {
                  std::lock_guard lock(mutex_);
                  const auto epoch = j.value("epoch", std::uint64_t{0});
                  if (!impl_->assignment || impl_->assignment->epoch != epoch) {
                    res.status = 409;
                    res.set_content(json{{"error", "not the plan assigned"}}.dump(),
                                    "application/json");
                    return;
                  }
                  impl_->connect_epoch = epoch;
                  impl_->connect = {j.value("coordinator", ""), j.value("next", "")};
                  impl_->connect_group.clear();
                  if (j.contains("group") && j["group"].is_array()) {
                    for (const auto& a : j["group"])
                      if (a.is_string()) impl_->connect_group.push_back(a.get<std::string>());
                  }
                }
                impl_->cv.notify_all();
                res.set_content(json{{"state", "connecting"}}.dump(), "application/json");
              });
  d.http.Post("/v1/node/probe",
              [this, authorized](const httplib::Request& req, httplib::Response& res) {
                if (!authorized(req, res)) return;
                json j = json::parse(req.body, nullptr, false);
                if (j.is_discarded() || !j.contains("targets") || !j["targets"].is_array() ||
                    j["targets"].size() > 64) {
                  res.status = 400;
                  return;
                }
                res.set_content(
                    json{{"links", probe_targets(options_.host, j["targets"])}}.dump(),
                    "application/json");
              });
  d.http.Get("/v1/node/state", [this, authorized](const httplib::Request& req,
                                                  httplib::Response& res) {
    if (!authorized(req, res)) return;
    std::lock_guard lock(mutex_);
    const WorkerState& w = impl_->worker;
    res.set_content(json{{"state", w.state},
                         {"epoch", w.epoch},
                         {"error", w.error},
                         {"address", w.address_hex}}
                        .dump(),
                    "application/json");
  });
}

void Node::control_loop() {
  auto& d = *impl_;
  std::int64_t next_beat = 0;
  int beats = 0;
  // Refused datagrams are logged at most once a second (a flood of them says so in one line).
  std::int64_t refusal_logged_ms = 0;
  int refusals_unlogged = 0;
  while (!stopping_) {
    const std::int64_t now = wall_ms();
    if (now >= next_beat && !leaving_) {
      Message m;
      m.type = beats++ < 3 ? MessageType::kAnnounce : MessageType::kHeartbeat;
      {
        std::lock_guard lock(mutex_);
        NodeInfo self = d.membership->self();
        self.coordinating = is_coordinator();
        self.live.rss_bytes = resident_bytes();
        self.live.power_watts = d.power.watts().value_or(-1);
        record_member_events(d, id_, d.membership->update_self(self));
        m.node = d.membership->self();
        const auto events = d.membership->tick(now);
        record_member_events(d, id_, events);
        react_to_events(events);
      }
      m.seq = ++d.seq;
      d.discovery->broadcast(seal(m, *d.secret, now));
      next_beat = now + 1000;
    }
    auto dgram = d.discovery->receive(100);
    if (!dgram) continue;
    if (auto reply = probe_reply(dgram->bytes)) {
      d.discovery->send_to(dgram->from, *reply);
      continue;
    }
    Opened opened = open(dgram->bytes, *d.secret, d.guard, wall_ms(), dgram->from.to_string());
    if (!opened) {
      const std::int64_t t = wall_ms();
      if (t - refusal_logged_ms < 1000) {
        ++refusals_unlogged;
        continue;
      }
      log::warn("node {}: refused a message from {}: {} (is its --secret-file the same?){}", id_,
                dgram->from.to_string(), opened.reason,
                refusals_unlogged > 0
                    ? fmt::format(" [and {} more refused in the last second]", refusals_unlogged)
                    : std::string());
      refusal_logged_ms = t;
      refusals_unlogged = 0;
      continue;
    }
    if (opened.message->node.id == id_) continue;
    d.discovery->add_peer(dgram->from);
    std::lock_guard lock(mutex_);
    const auto events = d.membership->on_message(*opened.message, wall_ms());
    record_member_events(d, id_, events);
    react_to_events(events);
  }
}

std::vector<std::string> wait_for_workers(const HttpAuth& auth,
                                          const std::map<std::string, NodeInfo>& infos,
                                          const Plan& plan, std::uint64_t epoch,
                                          const char* wanted, const std::atomic<bool>& stopping) {
  std::vector<std::string> addresses(plan.stages.size(), "");
  const auto until = std::chrono::steady_clock::now() + 600s;
  for (std::size_t i = 1; i < plan.stages.size(); ++i) {
    const NodeInfo& w = infos.at(plan.stages[i].node_id);
    for (;;) {
      if (stopping) fail("stopping");
      json st = get_signed(auth, w.address.host, w.address.cluster_port, "/v1/node/state");
      const std::string state = st.value("state", "");
      const bool current = st.value("epoch", std::uint64_t{0}) == epoch;
      if (current && state == "failed") fail("node '{}' failed: {}", w.id, st.value("error", ""));
      if (current && state == wanted) {
        addresses[i] = st.value("address", "");
        break;
      }
      if (std::chrono::steady_clock::now() > until)
        fail("node '{}' did not reach state '{}' within 600 s (it is '{}')", w.id, wanted, state);
      std::this_thread::sleep_for(100ms);
    }
  }
  return addresses;
}

void Node::run_coordinator() {
  auto& d = *impl_;
  const auto started = std::chrono::steady_clock::now();
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(options_.wait_timeout_s);
  for (;;) {
    std::size_t have = 0;
    {
      std::lock_guard lock(mutex_);
      have = d.membership->members().size();
    }
    // Told no count to wait for, a holder with peers still listens for two heartbeats first: one
    // of them may already coordinate (docs/cluster.md, "Coordinator").
    const bool heard_enough = options_.wait_nodes > 1 || options_.peers.empty() ||
                              std::chrono::steady_clock::now() > started + 2500ms;
    if (have >= static_cast<std::size_t>(options_.wait_nodes) && heard_enough) break;
    if (stopping_) return;
    if (std::chrono::steady_clock::now() > deadline)
      fail(
          "only {} of the {} expected nodes joined within {} s: check that the others run with "
          "the same --secret-file and can reach {}:{} (--peers)",
          have, options_.wait_nodes, options_.wait_timeout_s, options_.host, options_.cluster_port);
    set_status(fmt::format("waiting for {} more node(s)", options_.wait_nodes - have));
    std::this_thread::sleep_for(200ms);
  }
  // Shape of the model, from the tensor table (binding layer 0 touches no weight bytes).
  auto probe = model::Model::load(file_, model::LayerRange{0, 1});
  const int n_layer = probe->n_layer();
  const int train = probe->hparams().n_ctx_train;
  d.n_ctx = options_.n_ctx > 0 ? options_.n_ctx : std::min(train > 0 ? train : 4096, 4096);
  ModelShape& shape = d.shape;
  for (int il = 0; il < n_layer; ++il) shape.layer_bytes.push_back(probe->layer_bytes(il));
  shape.embedding_bytes = probe->embedding_bytes();
  shape.head_bytes = probe->head_bytes();
  shape.kv_bytes_per_token_per_layer = probe->kv_bytes_per_token_per_layer();
  shape.n_ctx = d.n_ctx;
  shape.activation_bytes = static_cast<std::uint64_t>(probe->n_embd()) * 4;
  d.n_vocab = probe->n_vocab();
  std::string coordinator;
  std::map<std::string, NodeInfo> infos;
  {
    std::lock_guard lock(mutex_);
    coordinator = d.membership->coordinator();
    for (const auto& [id, m] : d.membership->members()) infos[id] = m.info;
  }
  if (coordinator != id_) {
    // Another holder of the model coordinates (docs/cluster.md, "Coordinator"): this node
    // serves as a worker and takes over when that one is lost.
    log::info("node {}: standby: {} coordinates; this node holds the model file and takes over "
              "if it goes",
              id_, coordinator);
    {
      std::lock_guard lock(mutex_);
      d.standby = true;
    }
    run_worker();  // until the node stops or the membership makes it the coordinator
    if (stopping_) return;
    set_status("taking over as coordinator");
    log::warn("node {}: the coordinator is gone: this node takes over", id_);
    // The nodes left may not hold the model: then it says so and tries again as they change.
    for (;;) {
      try {
        infos = live_members();
        deploy(infos, plan_for(infos));
        break;
      } catch (const InvalidArgument&) {
        throw;
      } catch (const Error& e) {
        if (stopping_) return;
        set_status(fmt::format("cannot serve the model yet: {} (trying again as nodes join)",
                               e.what()));
        tear_down_pipeline(false);
        std::this_thread::sleep_for(2s);
      }
    }
    log::info("node {}: coordinating since the coordinator was lost", id_);
  } else {
    deploy(infos, plan_for(infos));
  }
  coordinating_ = true;
  ready_ = true;
  set_status("ready");
  watch_suspects();
}

Plan Node::plan_for(const std::map<std::string, NodeInfo>& infos) {
  auto& d = *impl_;
  ModelShape shape = d.shape;
  std::vector<PlacementMember> members;
  for (const auto& [id, info] : infos) {
    members.push_back({id,
                       info.resources.usable_memory_bytes,
                       info.resources.profile.memory_gb_per_s * 1e9,
                       {}});
  }
  PlacementOptions po;
  po.per_node_overhead_bytes = 0;  // --memory-limit is what a node offers for weights + KV cache
  // Every stage holds a KV slot per sequence served at once. Unless --parallel says, take the
  // most sequences (8, 4, 2, then 1) whose caches the cluster can hold next to the weights.
  int n_seqs = 1;
  auto most_sequences = [&](auto&& plan_with) {
    for (int p = options_.parallel > 0 ? options_.parallel : kMaxDefaultParallel;; p /= 2) {
      shape.n_ctx = static_cast<std::int64_t>(d.n_ctx) * p;
      try {
        Plan planned = plan_with();
        n_seqs = p;
        return planned;
      } catch (const InvalidArgument&) {
        throw;
      } catch (const Error&) {
        if (options_.parallel > 0 || p == 1) throw;
      }
    }
  };
  // The plan: measured links and the planner's choice (auto), one tensor group, or the
  // layer-range pipeline with the coordinator first (a pipeline stage is a group of one).
  // The links are measured whatever the mode: the dashboard shows them.
  LinkTable links;
  if (members.size() > 1) {
    set_status("measuring the links between the nodes");
    links = measure_links(infos);
  }
  Plan plan;
  if (options_.parallel_mode == "auto" && members.size() > 1) {
    plan = most_sequences(
        [&] { return plan_auto(shape, members, id_, links, d.n_vocab, po); });
  } else if (options_.parallel_mode == "tensor" && members.size() > 1) {
    plan = most_sequences([&] { return plan_tensor(shape, members, id_, po); });
  } else {
    plan = most_sequences([&] { return cluster::plan(shape, members, po); });
    put_coordinator_first(plan, id_, shape.layer_bytes,
                          infos.at(id_).resources.usable_memory_bytes);
    for (std::size_t i = 0; i < plan.stages.size(); ++i) plan.stages[i].group = static_cast<int>(i);
  }
  d.n_seqs = n_seqs;
  return plan;
}

void Node::deploy(const std::map<std::string, NodeInfo>& infos, const Plan& plan) {
  auto& d = *impl_;
  // Epochs grow across coordinators too (a node that takes over starts from the clock), so a
  // worker always takes the newest plan.
  d.epoch = std::max<std::uint64_t>(d.epoch + 1, static_cast<std::uint64_t>(wall_ms()));
  log::info("node {}: placement (plan {})\n{}", id_, d.epoch, plan.explain());
  {
    std::lock_guard lock(mutex_);
    d.plan = plan;
  }
  if (plan.stages.size() > 1) {
    run_groups(infos, plan);
    return;
  }
  auto model = model::Model::load(
      file_, model::LayerRange{plan.stages[0].first_layer, plan.stages[0].last_layer});
  auto local = std::make_unique<engine::LocalPipeline>(model, d.n_ctx, *d.pool, d.n_seqs);
  std::lock_guard lock(mutex_);
  model_ = std::move(model);
  d.local = std::move(local);
}

}  // namespace herd::cluster
