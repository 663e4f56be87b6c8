// herd cluster: who is in the cluster and which node holds which layers, and why (GET /v1/cluster).
#include <fmt/format.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "util/error.h"

namespace herd::cli {
namespace {

struct ClusterOptions {
  std::string api = "127.0.0.1:8080";
  std::string api_key;
};

int run_cluster(const ClusterOptions& o) {
  const auto colon = o.api.rfind(':');
  if (colon == std::string::npos) fail_argument("--api '{}': expected HOST:PORT", o.api);
  httplib::Client client(o.api.substr(0, colon), std::atoi(o.api.c_str() + colon + 1));
  client.set_connection_timeout(5, 0);
  httplib::Headers headers;
  std::string key = o.api_key;
  if (key.empty() && std::getenv("HERD_API_KEY")) key = std::getenv("HERD_API_KEY");
  if (!key.empty()) headers.emplace("Authorization", "Bearer " + key);
  auto r = client.Get("/v1/cluster", headers);
  if (!r)
    fail("no herd node answers at http://{}: {} (is `herd serve` running there?)", o.api,
         httplib::to_string(r.error()));
  if (r->status != 200)
    fail("http://{}/v1/cluster answered HTTP {}: {}", o.api, r->status, r->body);
  auto view = nlohmann::json::parse(r->body);
  fmt::print("node {} ({}); coordinator: {}\n\n", view.value("self", ""), view.value("status", ""),
             view.value("coordinator", ""));
  fmt::print("{:<20} {:<22} {:>12} {:>8} {:>8}  {}\n", "member", "api", "memory", "threads", "GB/s",
             "model");
  for (const auto& m : view["members"]) {
    const auto& a = m["address"];
    const auto& res = m["resources"];
    fmt::print("{:<20} {:<22} {:>12} {:>8} {:>8.1f}  {}\n", m.value("id", ""),
               fmt::format("{}:{}", a.value("host", ""), a.value("api_port", 0)),
               format_bytes(res.value("usable_memory_bytes", 0.0)), res.value("threads", 0),
               res["profile"].value("memory_gb_per_s", 0.0), m.value("model", ""));
  }
  if (view.contains("placement") && view["placement"].is_object()) {
    const auto& p = view["placement"];
    fmt::print("\nplacement:\n{}\n", p.value("explain", ""));
  } else {
    fmt::print("\nno placement known on this node: ask the coordinator (--api its address)\n");
  }
  if (view.contains("serving") && view["serving"].is_object()) {
    const auto& s = view["serving"];
    fmt::print(
        "\nserving: {} of {} sequences running, {} waiting; {} batches (last {} tokens of {} "
        "sequences); TTFT p50 {:.0f} ms, inter-token p50 {:.0f} / p99 {:.0f} ms; {} refused "
        "(429), {} cancelled, {} prompt tokens reused\n",
        s.value("running", 0), s.value("max_running", 0), s.value("waiting", 0),
        s.value("batches", 0), s.value("last_batch_tokens", 0), s.value("last_batch_sequences", 0),
        s.value("ttft_ms_p50", 0.0), s.value("itl_ms_p50", 0.0), s.value("itl_ms_p99", 0.0),
        s.value("rejected", 0), s.value("cancelled", 0), s.value("cached_prompt_tokens", 0));
  }
  return 0;
}

}  // namespace

CommandFn add_cluster_command(CLI::App& app) {
  auto o = std::make_shared<ClusterOptions>();
  auto* cmd = app.add_subcommand("cluster", "Show the members of a cluster and its placement");
  cmd->add_option("--api", o->api, "A node's API address HOST:PORT")->capture_default_str();
  cmd->add_option("--api-key", o->api_key, "API key (or HERD_API_KEY)");
  return [o] { return run_cluster(*o); };
}

}  // namespace herd::cli
