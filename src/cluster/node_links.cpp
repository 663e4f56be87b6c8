// Node: measuring the links between members for the planner (plan_auto). The coordinator probes
// its own link to every worker and asks each worker (POST /v1/node/probe, signed) to probe the
// workers after it, so every pair is measured once, by UDP round trips of several sizes to the
// other node's cluster port (placement/link_probe.h; every node answers probes).
#include <fmt/format.h>

#include "cluster/node_impl.h"
#include "cluster/placement/link_probe.h"
#include "util/error.h"
#include "util/log.h"

namespace herd::cluster {

using nlohmann::json;

namespace {

// Fewer probes than the default plan: enough for a median and a bandwidth fit, quick on a LAN.
ProbePlan quick_plan() {
  ProbePlan p;
  p.rtt_probes = 8;
  p.sizes = {1024, 16384, 60000};
  p.per_size = 2;
  return p;
}

}  // namespace

json probe_targets(const std::string& local_host, const json& targets) {
  json out = json::array();
  if (!targets.is_array()) return out;
  for (const auto& t : targets) {
    const std::string id = t.value("id", "");
    try {
      UdpProber prober({local_host, 0},
                       {t.value("host", ""), static_cast<std::uint16_t>(t.value("port", 0))});
      const LinkEstimate e =
          measure_link([&](std::size_t bytes) { return prober.round_trip(bytes); }, quick_plan())
              .estimate();
      out.push_back({{"id", id}, {"latency_s", e.latency_s}, {"bandwidth", e.bandwidth_bytes_per_s}});
    } catch (const Error& e) {
      log::warn("link probe to '{}' failed: {}", id, e.what());
    }
  }
  return out;
}

LinkTable Node::measure_links(const std::map<std::string, NodeInfo>& infos) {
  auto& d = *impl_;
  std::vector<const NodeInfo*> workers;
  for (const auto& [id, info] : infos)
    if (id != id_) workers.push_back(&info);
  auto target = [](const NodeInfo& n) {
    return json{{"id", n.id}, {"host", n.address.host}, {"port", n.address.cluster_port}};
  };
  LinkTable links;
  {
    std::lock_guard lock(mutex_);
    d.links = json::array();
  }
  auto record = [&](const std::string& from, const json& measured) {
    for (const auto& m : measured) {
      const LinkEstimate e{m.value("latency_s", 0.0), m.value("bandwidth", 0.0)};
      links.set(from, m.value("id", ""), e);
      {
        std::lock_guard lock(mutex_);  // for the dashboard
        d.links.push_back({{"a", from},
                           {"b", m.value("id", "")},
                           {"latency_s", e.latency_s},
                           {"bandwidth", e.bandwidth_bytes_per_s}});
      }
      log::info("node {}: link {} <-> {}: {:.3f} ms one way, {}", id_, from, m.value("id", ""),
                e.latency_s * 1e3,
                e.bandwidth_bytes_per_s > 0
                    ? fmt::format("{:.0f} Mbit/s", e.bandwidth_bytes_per_s * 8 / 1e6)
                    : std::string("bandwidth not measurable"));
    }
  };
  json mine = json::array();
  for (const NodeInfo* w : workers) mine.push_back(target(*w));
  record(id_, probe_targets(options_.host, mine));
  for (std::size_t i = 0; i + 1 < workers.size(); ++i) {
    json targets = json::array();
    for (std::size_t j = i + 1; j < workers.size(); ++j) targets.push_back(target(*workers[j]));
    try {
      const json reply = post_signed(*d.http_auth, workers[i]->address.host,
                                     workers[i]->address.cluster_port, "/v1/node/probe",
                                     {{"targets", targets}});
      record(workers[i]->id, reply.value("links", json::array()));
    } catch (const Error& e) {
      log::warn("node {}: node '{}' could not measure its links: {}", id_, workers[i]->id,
                e.what());
    }
  }
  return links;
}

}  // namespace herd::cluster
