// Node: how a cluster heals. The coordinator is its scheduler's PipelineRecovery:
// - a node lost (the pipeline fails, or the membership times it out or hears it leave): the
//   members still alive are asked whether they answer, a plan is made over those that do, the
//   survivors are assigned their new layers (fetched from this node, which holds the file) and
//   the scheduler resumes every request on the new pipeline;
// - a node joined (or a suspect answers again): the scheduler is asked for a quiet moment; the
//   plan over everyone is deployed only when it is faster than the current one;
// - the survivors cannot hold the model: Unavailable (HTTP 503) saying what is missing, until a
//   join makes a plan possible again.
// The rules are in docs/cluster.md ("Healing").
#include <fmt/format.h>
#include <httplib.h>

#include <chrono>
#include <thread>

#include "cluster/node_impl.h"
#include "util/error.h"
#include "util/log.h"

namespace herd::cluster {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// A new plan replaces a working one only when it is clearly faster: re-deploying costs a pause
// of every stream.
constexpr double kBetterBy = 0.95;
// Deploying a plan that fails (another node lost meanwhile) is tried again this many times.
constexpr int kDeployAttempts = 3;

std::string what_of(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
  }
  return "unknown error";
}

std::string ids_of(const std::map<std::string, NodeInfo>& infos) {
  std::string out;
  for (const auto& [id, info] : infos) out += (out.empty() ? "" : ", ") + id;
  return out;
}

std::set<std::string> nodes_of(const Plan& plan) {
  std::set<std::string> ids;
  for (const auto& s : plan.stages) ids.insert(s.node_id);
  return ids;
}

}  // namespace

bool Node::wants_rebuild() const {
  return impl_->want_rebuild.load();
}

int Node::n_ctx() const {
  return impl_->n_ctx;
}

std::map<std::string, NodeInfo> Node::live_members() {
  auto& d = *impl_;
  std::map<std::string, NodeInfo> infos;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, m] : d.membership->members()) {
      if (!d.suspects.contains(id)) infos[id] = m.info;
    }
  }
  // A member whose process died stays in the table until its heartbeats time out (seconds):
  // ask each one now, briefly.
  for (auto it = infos.begin(); it != infos.end();) {
    if (it->first == id_) {
      ++it;
      continue;
    }
    const NodeInfo& w = it->second;
    httplib::Client client(w.address.host, w.address.cluster_port);
    client.set_connection_timeout(1, 0);
    client.set_read_timeout(2, 0);
    const std::string path = "/v1/node/state";
    auto r = client.Get(path.c_str(), d.http_auth->sign("GET", path));
    if (r && r->status == 200) {
      ++it;
      continue;
    }
    log::warn("node {}: member {} does not answer ({}); leaving it out until it does", id_,
              it->first, r ? fmt::format("HTTP {}", r->status) : httplib::to_string(r.error()));
    std::lock_guard lock(mutex_);
    d.suspects.insert(it->first);
    it = infos.erase(it);
  }
  return infos;
}

void Node::tear_down_pipeline(bool tell_chain) {
  auto& d = *impl_;
  // A planned change: the stages end their serving (a node that leaves gracefully waits for
  // this before it exits).
  if (tell_chain && d.cluster_pipeline) d.cluster_pipeline->shutdown();
  std::unique_ptr<ClusterPipeline> cluster;
  std::unique_ptr<engine::LocalPipeline> local;
  {
    std::lock_guard lock(mutex_);
    cluster = std::move(d.cluster_pipeline);
    local = std::move(d.local);
  }
  cluster.reset();
  local.reset();
  d.reducer.reset();
  d.transport.reset();
}

engine::Pipeline& Node::rebuild(std::exception_ptr failure) {
  auto& d = *impl_;
  d.want_rebuild = false;
  const auto started = std::chrono::steady_clock::now();
  const std::string why = failure ? what_of(failure) : "the cluster changed";
  auto set_recovering = [&](std::string text) {
    std::lock_guard lock(mutex_);
    d.recovering = std::move(text);
  };
  for (int attempt = 1;; ++attempt) {
    if (stopping_) throw Unavailable("the node is shutting down");
    set_recovering(failure ? "a node was lost: re-planning" : "re-planning");
    const std::map<std::string, NodeInfo> infos = live_members();
    // A node of the current plan left (gracefully: it serves until we are done) or was lost.
    bool broken = false;
    if (d.plan) {
      for (const auto& id : nodes_of(*d.plan)) broken = broken || !infos.contains(id);
    }
    const bool serving = d.cluster_pipeline || d.local;
    Plan plan;
    try {
      plan = plan_for(infos);
    } catch (const Error& e) {
      set_recovering("");
      if (!failure && serving && !broken) {
        log::info("node {}: no new plan over {} ({}); the current one stays", id_, ids_of(infos),
                  e.what());
        return pipeline();
      }
      tear_down_pipeline(!failure);
      {
        std::lock_guard lock(mutex_);
        d.plan.reset();
      }
      throw Unavailable(fmt::format(
          "the cluster cannot serve the model now: the {} node(s) that answer ({}) cannot hold "
          "it ({}). It serves again by itself when a node with enough memory joins.",
          infos.size(), ids_of(infos), e.what()));
    }
    if (!failure && serving && d.plan && !broken) {
      const bool changed = nodes_of(plan) != nodes_of(*d.plan);
      if (!changed || plan.seconds_per_token > kBetterBy * d.plan->seconds_per_token) {
        set_recovering("");
        log::info("node {}: the current plan stays ({:.2f} ms per token; over {}: {:.2f} ms)", id_,
                  d.plan->seconds_per_token * 1e3, ids_of(infos), plan.seconds_per_token * 1e3);
        set_status("ready");
        return pipeline();
      }
    }
    tear_down_pipeline(!failure);
    try {
      deploy(infos, plan);
    } catch (const Error& e) {
      log::warn("node {}: plan {} over {} failed: {}", id_, d.epoch, ids_of(infos), e.what());
      if (stopping_ || attempt >= kDeployAttempts) {
        set_recovering("");
        tear_down_pipeline(false);
        throw Unavailable(fmt::format("the cluster could not be set up again after {} tries: {}",
                                      attempt, e.what()));
      }
      failure = std::current_exception();
      continue;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    log::info("node {}: serving again on plan {} over {} after {:.2f} s ({})", id_, d.epoch,
              ids_of(infos), seconds, why);
    {
      std::lock_guard lock(mutex_);
      d.recovering.clear();
      d.events.push_back({{"time_ms", wall_ms()},
                          {"node_id", id_},
                          {"event", failure ? "recovered" : "re-planned"},
                          {"detail", fmt::format("plan {} over {} in {:.1f} s: {}", d.epoch,
                                                 ids_of(infos), seconds, why)}});
      if (d.events.size() > 20) d.events.pop_front();
    }
    set_status("ready");
    return pipeline();
  }
}

void Node::react_to_events(const std::vector<MemberEvent>& events) {
  auto& d = *impl_;
  if (d.standby && !is_coordinator()) {
    // A standby holder named coordinator (the coordinator was lost): its worker loop ends and
    // run_coordinator() takes over.
    for (const auto& e : events) {
      if (e.type != MemberEventType::kCoordinatorChanged || e.node_id != id_) continue;
      d.promote = true;
      d.leave_stage = true;
      d.cv.notify_all();
    }
    return;
  }
  if (!is_coordinator() || !ready_) return;
  for (const auto& e : events) {
    if (e.node_id == id_) continue;
    switch (e.type) {
      case MemberEventType::kJoined:
        d.suspects.erase(e.node_id);
        d.want_rebuild = true;
        break;
      case MemberEventType::kLeft:
      case MemberEventType::kTimedOut: {
        d.suspects.erase(e.node_id);
        if (!d.plan || !nodes_of(*d.plan).contains(e.node_id)) break;
        // A node that leaves serves until the re-plan at the next quiet moment releases it. One
        // that went silent cannot: what waits on it fails now, and an idle cluster heals
        // before the next request.
        if (d.cluster_pipeline && e.type == MemberEventType::kTimedOut)
          d.cluster_pipeline->abandon(fmt::format("node '{}' {}", e.node_id,
                                                  "stopped sending heartbeats"));
        d.want_rebuild = true;
        break;
      }
      default:
        break;
    }
  }
}

void Node::watch_suspects() {
  auto& d = *impl_;
  while (!stopping_) {
    std::this_thread::sleep_for(500ms);
    std::vector<NodeInfo> check;
    {
      std::lock_guard lock(mutex_);
      for (auto it = d.suspects.begin(); it != d.suspects.end();) {
        const Member* m = d.membership->find(*it);
        if (!m) {
          it = d.suspects.erase(it);  // timed out: it comes back with a join
          continue;
        }
        check.push_back(m->info);
        ++it;
      }
    }
    for (const NodeInfo& w : check) {
      httplib::Client client(w.address.host, w.address.cluster_port);
      client.set_connection_timeout(1, 0);
      client.set_read_timeout(2, 0);
      const std::string path = "/v1/node/state";
      auto r = client.Get(path.c_str(), d.http_auth->sign("GET", path));
      if (!r || r->status != 200) continue;
      log::info("node {}: member {} answers again", id_, w.id);
      std::lock_guard lock(mutex_);
      d.suspects.erase(w.id);
      d.want_rebuild = true;
    }
  }
}

}  // namespace herd::cluster
