// The member table: who is in the cluster, what they offer, and who coordinates. A pure state
// machine — messages and the current time go in, events come out — so every timing rule is
// tested without sockets or sleeps. The daemon feeds it from discovery and acts on the events
// (re-plan placement, move weights, tell the API).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cluster/control/messages.h"

namespace herd::cluster {

struct MembershipConfig {
  std::int64_t heartbeat_interval_ms = 1000;  // how often each node should send a Heartbeat
  std::int64_t timeout_ms = 4000;             // silence after which a member is declared gone
  // A change of usable memory or of a profile figure smaller than this fraction is absorbed
  // silently (free memory drifts); larger ones raise kResourcesChanged.
  double resource_change_fraction = 0.05;
};

enum class MemberEventType { kJoined, kLeft, kTimedOut, kResourcesChanged, kCoordinatorChanged };
const char* member_event_name(MemberEventType type);

struct MemberEvent {
  MemberEventType type;
  std::string node_id;  // for kCoordinatorChanged: the new coordinator ("" = none)
  std::string detail;   // for people: the leave reason, what changed ...
};

struct Member {
  NodeInfo info;
  std::int64_t joined_ms = 0;
  std::int64_t last_seen_ms = 0;
  std::uint64_t last_seq = 0;
};

class Membership {
 public:
  // `self` is always a member and never times out.
  Membership(NodeInfo self, MembershipConfig config = {});

  // An authenticated message (from open()) received at now_ms.
  std::vector<MemberEvent> on_message(const Message& message, std::int64_t now_ms);
  // Expires members silent for longer than timeout_ms. Call at least every heartbeat interval.
  std::vector<MemberEvent> tick(std::int64_t now_ms);
  // This node's own resources changed (e.g. re-profiled, memory freed).
  std::vector<MemberEvent> update_self(const NodeInfo& self);

  const std::map<std::string, Member>& members() const { return members_; }  // by id, self included
  const Member* find(const std::string& id) const;
  const NodeInfo& self() const { return members_.at(self_id_).info; }

  // The coordinator plans placement and owns the request queue: among live members that hold a
  // model file, one that coordinates now (so that a former coordinator coming back does not take
  // over a serving cluster), else the lowest id. Everyone computes the same answer from the same
  // table, so no election messages are needed; a table that briefly differs between nodes after
  // a join settles within one heartbeat.
  std::string coordinator() const;
  bool is_coordinator() const { return coordinator() == self_id_; }

 private:
  bool significant_change(const NodeResources& before, const NodeResources& after) const;
  void note_coordinator(std::vector<MemberEvent>& events);

  MembershipConfig config_;
  std::string self_id_;
  std::map<std::string, Member> members_;
  std::map<std::string, NodeResources> reported_;  // resources as of the last event, per member
  std::string coordinator_;
};

}  // namespace herd::cluster
