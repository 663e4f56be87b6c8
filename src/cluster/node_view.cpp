// Node: what GET /v1/cluster shows (the dashboard's one source): the members with their
// resources and what they do now, the placement, the measured links, and the membership's
// recent history (who joined, who left and why).
#include <fmt/format.h>

#include "cluster/node_impl.h"
#include "util/log.h"
#include "util/process_memory.h"

namespace herd::cluster {

using nlohmann::json;

namespace {

// Events and departed members kept for the dashboard.
constexpr std::size_t kKeptEvents = 20;
constexpr std::size_t kKeptDeparted = 16;

json node_json(const NodeInfo& n) {
  json live = {{"rss_bytes", n.live.rss_bytes}, {"power_watts", nullptr}};
  if (n.live.power_watts >= 0) live["power_watts"] = n.live.power_watts;
  return {{"id", n.id},
          {"name", n.name},
          {"model", n.model},
          {"address",
           {{"host", n.address.host},
            {"api_port", n.address.api_port},
            {"cluster_port", n.address.cluster_port}}},
          {"resources",
           {{"usable_memory_bytes", n.resources.usable_memory_bytes},
            {"threads", n.resources.threads},
            {"cpu", n.resources.cpu},
            {"cpu_features", n.resources.cpu_features},
            {"profile",
             {{"matvec_gflops", n.resources.profile.matvec_gflops},
              {"memory_gb_per_s", n.resources.profile.memory_gb_per_s}}}}},
          {"live", live}};
}

json plan_json(const Plan& plan) {
  json stages = json::array();
  for (const auto& s : plan.stages) {
    stages.push_back({{"node_id", s.node_id},
                      {"first_layer", s.first_layer},
                      {"last_layer", s.last_layer},
                      {"weight_bytes", s.weight_bytes},
                      {"kv_bytes", s.kv_bytes},
                      {"total_bytes", s.total_bytes},
                      {"usable_bytes", s.usable_bytes},
                      {"seconds_per_token", s.seconds_per_token},
                      {"group", s.group},
                      {"share", s.share},
                      {"reason", s.reason}});
  }
  return {{"mode", plan.mode},
          {"stages", stages},
          {"seconds_per_token", plan.seconds_per_token},
          {"bottleneck_seconds", plan.bottleneck_seconds},
          {"unused", plan.unused},
          {"summary", plan.summary},
          {"explain", plan.explain()}};
}

// Sum of the members' power, only when every one of them reports it (a partial sum would
// understate the cluster's energy).
json power_json(const std::vector<const NodeInfo*>& members, const std::string& reason) {
  double watts = 0;
  int reporting = 0;
  for (const NodeInfo* m : members) {
    if (m->live.power_watts < 0) continue;
    watts += m->live.power_watts;
    ++reporting;
  }
  const bool all = reporting > 0 && reporting == static_cast<int>(members.size());
  json p = {{"available", all},
            {"members_reporting", reporting},
            {"watts", all ? json(watts) : json(nullptr)}};
  if (!all)
    p["note"] = reporting == 0 ? "not available: " + reason
                               : fmt::format("not available: only {} of {} nodes report power",
                                             reporting, members.size());
  return p;
}

}  // namespace

void record_member_events(Node::Impl& d, const std::string& self_id,
                          const std::vector<MemberEvent>& events) {
  for (const auto& e : events) {
    log::info("node {}: member {} {} {}", self_id, e.node_id, member_event_name(e.type), e.detail);
    d.events.push_back({{"time_ms", wall_ms()},
                        {"node_id", e.node_id},
                        {"event", member_event_name(e.type)},
                        {"detail", e.detail}});
    if (d.events.size() > kKeptEvents) d.events.pop_front();
    if (e.type == MemberEventType::kLeft || e.type == MemberEventType::kTimedOut) {
      if (auto it = d.known.find(e.node_id); it != d.known.end()) {
        json gone = node_json(it->second);
        gone["left_ms"] = wall_ms();
        gone["why"] = e.type == MemberEventType::kLeft
                          ? (e.detail.empty() ? std::string("left") : "left: " + e.detail)
                          : std::string("timed out (no heartbeat)");
        d.departed[e.node_id] = gone;
        if (d.departed.size() > kKeptDeparted) d.departed.erase(d.departed.begin());
      }
    } else if (e.type == MemberEventType::kJoined) {
      d.departed.erase(e.node_id);
    }
  }
  for (const auto& [id, m] : d.membership->members()) d.known[id] = m.info;
}

json Node::cluster_view() const {
  json view = {{"self", id_}, {"status", status()}, {"clustered", clustered_}};
  auto& d = *impl_;
  std::lock_guard lock(mutex_);
  if (is_coordinator()) view["model"] = model_id();
  json members = json::array();
  std::vector<const NodeInfo*> infos;
  if (d.membership) {
    view["coordinator"] = d.membership->coordinator();
    for (const auto& [id, m] : d.membership->members()) infos.push_back(&m.info);
  } else {
    view["coordinator"] = id_;
    d.self.live.rss_bytes = resident_bytes();
    d.self.live.power_watts = d.power.watts().value_or(-1);
    infos.push_back(&d.self);
  }
  for (const NodeInfo* n : infos) members.push_back(node_json(*n));
  view["members"] = members;
  view["power"] = power_json(infos, d.power.unavailable_reason());
  view["links"] = d.links;
  view["events"] = json(d.events);
  json departed = json::array();
  for (const auto& [id, gone] : d.departed) departed.push_back(gone);
  view["departed"] = departed;
  if (d.plan) {
    view["placement"] = plan_json(*d.plan);
  } else if (model_) {
    const std::uint64_t kv = model_->kv_bytes_per_token_per_layer() *
                             static_cast<std::uint64_t>(model_->n_layer()) *
                             static_cast<std::uint64_t>(d.n_ctx) *
                             static_cast<std::uint64_t>(d.n_seqs);
    const std::uint64_t weights = model_->file().mapping() ? model_->file().mapping()->size() : 0;
    view["placement"] = {
        {"mode", "single"},
        {"stages", json::array({{{"node_id", id_},
                                 {"first_layer", 0},
                                 {"last_layer", model_->n_layer()},
                                 {"weight_bytes", weights},
                                 {"kv_bytes", kv},
                                 {"total_bytes", weights + kv},
                                 {"usable_bytes", d.self.resources.usable_memory_bytes},
                                 {"seconds_per_token", 0},
                                 {"group", 0},
                                 {"share", 1.0},
                                 {"reason", "single node: the whole model"}}})},
        {"explain", "one node holds every layer"}};
  }
  if (!is_coordinator()) {
    view["worker"] = {{"state", d.worker.state}, {"error", d.worker.error}};
    if (d.assignment) {
      view["worker"]["layers"] = {d.assignment->range.first, d.assignment->range.last};
      if (d.assignment->tensor_weights.size() > 1)
        view["worker"]["tensor_rank"] = d.assignment->tensor_rank;
    }
  }
  return view;
}

}  // namespace herd::cluster
