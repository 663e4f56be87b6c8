#include "cluster/control/membership.h"

#include <fmt/format.h>

#include <cmath>

#include "util/error.h"
#include "util/log.h"

namespace herd::cluster {

const char* member_event_name(MemberEventType type) {
  switch (type) {
    case MemberEventType::kJoined:
      return "joined";
    case MemberEventType::kLeft:
      return "left";
    case MemberEventType::kTimedOut:
      return "timed out";
    case MemberEventType::kResourcesChanged:
      return "resources changed";
    case MemberEventType::kCoordinatorChanged:
      return "coordinator changed";
  }
  return "?";
}

Membership::Membership(NodeInfo self, MembershipConfig config)
    : config_(config), self_id_(self.id) {
  HERD_CHECK(!self_id_.empty());
  HERD_CHECK(config_.timeout_ms > config_.heartbeat_interval_ms);
  reported_[self_id_] = self.resources;
  members_[self_id_] = Member{std::move(self), 0, 0, 0};
  coordinator_ = coordinator();
}

const Member* Membership::find(const std::string& id) const {
  auto it = members_.find(id);
  return it == members_.end() ? nullptr : &it->second;
}

std::string Membership::coordinator() const {
  // A holder that coordinates now keeps the role (the lowest id of them, should two claim it);
  // otherwise the lowest id among the holders. std::map iterates by ascending id.
  for (const auto& [id, m] : members_)
    if (!m.info.model.empty() && m.info.coordinating) return id;
  for (const auto& [id, m] : members_)
    if (!m.info.model.empty()) return id;
  return members_.begin()->first;
}

void Membership::note_coordinator(std::vector<MemberEvent>& events) {
  auto now = coordinator();
  if (now == coordinator_) return;
  coordinator_ = now;
  events.push_back({MemberEventType::kCoordinatorChanged, now, fmt::format("{} coordinates", now)});
}

bool Membership::significant_change(const NodeResources& before, const NodeResources& after) const {
  auto moved = [&](double a, double b) {
    double scale = std::max(std::abs(a), std::abs(b));
    return scale > 0 && std::abs(a - b) > config_.resource_change_fraction * scale;
  };
  return before.threads != after.threads || before.cpu_features != after.cpu_features ||
         moved(static_cast<double>(before.usable_memory_bytes),
               static_cast<double>(after.usable_memory_bytes)) ||
         moved(before.profile.matvec_gflops, after.profile.matvec_gflops) ||
         moved(before.profile.memory_gb_per_s, after.profile.memory_gb_per_s);
}

std::vector<MemberEvent> Membership::on_message(const Message& message, std::int64_t now_ms) {
  std::vector<MemberEvent> events;
  const std::string& id = message.node.id;
  if (id == self_id_) {
    // Our own multicast looped back, or another node configured with our id.
    return events;
  }
  auto it = members_.find(id);
  if (message.type == MessageType::kLeave) {
    if (it == members_.end()) return events;
    members_.erase(it);
    reported_.erase(id);
    events.push_back(
        {MemberEventType::kLeft, id, message.reason.empty() ? "left" : message.reason});
    note_coordinator(events);
    return events;
  }
  if (it == members_.end()) {
    members_[id] = Member{message.node, now_ms, now_ms, message.seq};
    reported_[id] = message.node.resources;
    events.push_back(
        {MemberEventType::kJoined, id,
         fmt::format("{} ({}:{}) via {}", message.node.name, message.node.address.host,
                     message.node.address.cluster_port, message_type_name(message.type))});
    note_coordinator(events);
    return events;
  }
  Member& m = it->second;
  // UDP may reorder: an older message must not overwrite newer state. Senders keep seq
  // increasing across restarts (messages.h), so any drop means a stale datagram.
  if (message.seq < m.last_seq) return events;
  m.last_seen_ms = now_ms;
  m.last_seq = message.seq;
  bool model_changed = m.info.model != message.node.model;
  const bool role_changed = m.info.coordinating != message.node.coordinating;
  m.info = message.node;
  if (role_changed) note_coordinator(events);
  if (significant_change(reported_[id], message.node.resources) || model_changed) {
    reported_[id] = message.node.resources;
    events.push_back(
        {MemberEventType::kResourcesChanged, id,
         fmt::format("{} usable, {} threads, {:.1f} GB/s{}",
                     message.node.resources.usable_memory_bytes >> 20,
                     message.node.resources.threads, message.node.resources.profile.memory_gb_per_s,
                     model_changed ? ", model now \"" + message.node.model + "\"" : "")});
    if (model_changed) note_coordinator(events);
  }
  return events;
}

std::vector<MemberEvent> Membership::tick(std::int64_t now_ms) {
  std::vector<MemberEvent> events;
  for (auto it = members_.begin(); it != members_.end();) {
    if (it->first != self_id_ && now_ms - it->second.last_seen_ms > config_.timeout_ms) {
      events.push_back({MemberEventType::kTimedOut, it->first,
                        fmt::format("silent for {} ms", now_ms - it->second.last_seen_ms)});
      reported_.erase(it->first);
      it = members_.erase(it);
    } else {
      ++it;
    }
  }
  if (!events.empty()) note_coordinator(events);
  return events;
}

std::vector<MemberEvent> Membership::update_self(const NodeInfo& self) {
  HERD_CHECK(self.id == self_id_);
  std::vector<MemberEvent> events;
  Member& m = members_.at(self_id_);
  bool model_changed = m.info.model != self.model;
  const bool role_changed = m.info.coordinating != self.coordinating;
  m.info = self;
  if (role_changed) note_coordinator(events);
  if (significant_change(reported_[self_id_], self.resources) || model_changed) {
    reported_[self_id_] = self.resources;
    events.push_back({MemberEventType::kResourcesChanged, self_id_, "this node"});
    note_coordinator(events);
  }
  return events;
}

}  // namespace herd::cluster
