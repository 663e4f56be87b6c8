// A cluster that heals, through real processes on 127.0.0.1: a worker killed with SIGKILL in the
// middle of streamed answers (they pause and go on with exactly the text of an uninterrupted
// run), survivors too small (HTTP 503 within seconds, and serving again once the node is back),
// and a node that joins under load (re-planned at a quiet moment, no request dropped).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "cli/process_cluster.h"
#include "support/test_data.h"

namespace herd::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Cluster = ProcessCluster;
using Clock = std::chrono::steady_clock;

constexpr int kCtx = 1024;

// The greedy text of prompt ids "1" on one node, as `herd run` prints it.
std::string one_node_text(const fs::path& model, int n) {
  std::string out = run_capture(herd_binary().string() + " run -m " + model.string() +
                                " --tokens 1 --ignore-eos --temp 0 -t 1 -c " +
                                std::to_string(kCtx) + " -n " + std::to_string(n) +
                                " 2>/dev/null");
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return json_safe(out);
}

struct Streamed {
  std::string text;
  std::string finish_reason;
  std::string error;     // an error event or a failed request
  int chunks = 0;
  double longest_gap_s = 0;  // the longest wait between two pieces of text
};

// Streams a greedy completion of prompt ids "1"; on_chunk(k) runs after the k-th piece.
Streamed stream(int api_port, int n, const std::function<void(int)>& on_chunk = {}) {
  Streamed out;
  httplib::Client c("127.0.0.1", api_port);
  c.set_read_timeout(120, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.set_header("Content-Type", "application/json");
  req.body = json{{"prompt", json::array({1})}, {"max_tokens", n},       {"temperature", 0},
                  {"ignore_eos", true},         {"cache_prompt", false}, {"stream", true}}
                 .dump();
  std::string buffer, raw;  // raw: everything, for the error of a request refused
  auto last = Clock::now();
  req.content_receiver = [&](const char* data, std::size_t size, std::uint64_t, std::uint64_t) {
    buffer.append(data, size);
    if (raw.size() < 4096) raw.append(data, size);
    for (std::size_t end; (end = buffer.find("\n\n")) != std::string::npos;) {
      std::string event = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0 || event == "data: [DONE]") continue;
      const json j = json::parse(event.substr(6), nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("error")) {
        out.error = j["error"].dump();
        continue;
      }
      const json& choice = j["choices"][0];
      const std::string piece = choice.value("text", "");
      if (!choice["finish_reason"].is_null()) out.finish_reason = choice["finish_reason"];
      if (piece.empty()) continue;
      const auto now = Clock::now();
      if (out.chunks > 0)
        out.longest_gap_s =
            std::max(out.longest_gap_s, std::chrono::duration<double>(now - last).count());
      last = now;
      out.text += piece;
      if (on_chunk) on_chunk(++out.chunks);
    }
    return true;
  };
  auto r = c.send(req);
  if (!r) out.error = "no answer: " + httplib::to_string(r.error());
  else if (r->status != 200) out.error = fmt::format("HTTP {}: {}", r->status, raw);
  return out;
}

json cluster_view(int api_port) {
  httplib::Client c("127.0.0.1", api_port);
  auto r = c.Get("/v1/cluster");
  return r ? json::parse(r->body, nullptr, false) : json();
}

std::set<std::string> planned_nodes(const json& view) {
  std::set<std::string> ids;
  if (!view.contains("placement")) return ids;
  for (const auto& s : view["placement"]["stages"]) ids.insert(s.value("node_id", ""));
  return ids;
}

bool is_member(const json& view, const std::string& id) {
  if (!view.contains("members")) return false;
  for (const auto& m : view["members"])
    if (m.value("id", "") == id) return true;
  return false;
}

bool wait_for(const std::function<bool()>& done, int seconds) {
  const auto until = Clock::now() + std::chrono::seconds(seconds);
  while (Clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

// A 3-node cluster of stories260K in which each node offers `fraction` of what the model and
// one sequence's cache need.
struct ThreeNodes {
  Cluster cluster;
  Cluster::Node coord, w1, w2;
  std::vector<std::string> worker_args;

  ThreeNodes(const std::string& tag, const fs::path& model, double fraction,
             const std::string& mode, int parallel)
      : cluster(tag) {
    // Weights ~ the file; the f16 cache: 0.1 KiB per position and layer, 5 layers.
    const double need = static_cast<double>(fs::file_size(model)) + kCtx * 5 * 128.0 * parallel;
    const std::string limit = std::to_string(static_cast<std::uint64_t>(need * fraction));
    coord = cluster.start("n0", {"--model", model.string(), "--wait-nodes", "3", "--ctx",
                                 std::to_string(kCtx), "--parallel", std::to_string(parallel),
                                 "--memory-limit", limit, "--parallel-mode", mode});
    worker_args = {"--peers", "127.0.0.1:" + std::to_string(coord.cluster), "--memory-limit",
                   limit};
    w1 = cluster.start("n1", worker_args);
    w2 = cluster.start("n2", worker_args);
  }
};

// SIGKILL of a worker that holds layers, mid-stream: the answer pauses and goes on; the text is
// the uninterrupted run's. The pause is printed (the closing note quotes it).
TEST(Healing, AStreamSurvivesAWorkerKilledMidAnswer) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  const int n = 600;
  const std::string expected = one_node_text(model, n);
  ASSERT_FALSE(expected.empty());
  // Any two nodes hold the model, one does not.
  ThreeNodes c("heal-pipeline", model, 0.6, "pipeline", 1);
  ASSERT_TRUE(c.cluster.wait_ready(c.coord, 90)) << read_text(c.coord.log);
  const json view = cluster_view(c.coord.api);
  const std::string victim = view["placement"]["stages"].back().value("node_id", "");
  ASSERT_TRUE(victim == "n1" || victim == "n2") << view.dump();
  const Cluster::Node& killed = victim == "n1" ? c.w1 : c.w2;

  const Streamed s = stream(c.coord.api, n, [&](int chunk) {
    if (chunk == 60) c.cluster.signal_and_wait(killed, SIGKILL);
  });
  EXPECT_EQ(s.error, "") << read_text(c.coord.log);
  EXPECT_EQ(s.finish_reason, "length");
  EXPECT_EQ(s.text, expected);
  std::printf("stream paused %.2f s at most after SIGKILL of %s\n", s.longest_gap_s,
              victim.c_str());

  const json after = cluster_view(c.coord.api);
  EXPECT_FALSE(planned_nodes(after).contains(victim)) << after["placement"].dump();
  EXPECT_GE(after["serving"].value("recoveries", 0), 1) << after["serving"].dump();
  EXPECT_NE(after["events"].dump().find("recovered"), std::string::npos) << after["events"];
  // And the next request is served by the survivors.
  const Streamed next = stream(c.coord.api, 40);
  EXPECT_EQ(next.error, "");
  EXPECT_EQ(next.text, expected.substr(0, next.text.size()));
}

// Survivors that cannot hold the model: 503 with what is missing, within 5 s; once the node is
// back, the first request is served, by a plan that uses it again.
TEST(Healing, SurvivorsTooSmallGive503UntilTheNodeReturns) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  const std::string expected = one_node_text(model, 30);
  ThreeNodes c("heal-503", model, 0.45, "tensor", 1);  // all three are needed
  ASSERT_TRUE(c.cluster.wait_ready(c.coord, 90)) << read_text(c.coord.log);
  EXPECT_EQ(stream(c.coord.api, 30).text, expected);

  c.cluster.signal_and_wait(c.w2, SIGKILL);
  const auto asked = Clock::now();
  const Streamed refused = stream(c.coord.api, 30);
  const double took = std::chrono::duration<double>(Clock::now() - asked).count();
  EXPECT_LT(took, 5.0);
  EXPECT_NE(refused.error.find("HTTP 503"), std::string::npos) << refused.error;
  EXPECT_NE(refused.error.find("cannot hold"), std::string::npos) << refused.error;
  // Still refused at once while the node is away.
  EXPECT_NE(stream(c.coord.api, 30).error.find("HTTP 503"), std::string::npos);

  ASSERT_TRUE(wait_for([&] { return !is_member(cluster_view(c.coord.api), "n2"); }, 10));
  auto back = c.cluster.restart(c.w2, "n2", c.worker_args);
  ASSERT_TRUE(wait_for([&] { return is_member(cluster_view(c.coord.api), "n2"); }, 15));
  const Streamed first = stream(c.coord.api, 30);
  EXPECT_EQ(first.error, "") << read_text(c.coord.log);
  EXPECT_EQ(first.text, expected);
  EXPECT_TRUE(planned_nodes(cluster_view(c.coord.api)).contains("n2"));
}

// Streams survive a kill in a tensor-parallel group, and a node joining under load is taken in
// at a quiet moment without dropping any of them.
TEST(Healing, ConcurrentStreamsSurviveAKillAndARejoin) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  const int n = 400;
  const std::string expected = one_node_text(model, n);
  ThreeNodes c("heal-tensor", model, 0.7, "tensor", 4);  // any two hold the model
  ASSERT_TRUE(c.cluster.wait_ready(c.coord, 90)) << read_text(c.coord.log);

  auto run_four = [&](const std::function<void()>& during) {
    std::vector<Streamed> results(4);
    std::vector<std::thread> clients;
    std::atomic<int> started{0};
    for (int i = 0; i < 4; ++i) {
      clients.emplace_back([&, i] {
        results[i] = stream(c.coord.api, n, [&](int chunk) {
          if (chunk == 1) ++started;
        });
      });
    }
    wait_for([&] { return started == 4; }, 60);
    during();
    for (auto& t : clients) t.join();
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(results[i].error, "") << "stream " << i;
      EXPECT_EQ(results[i].text, expected) << "stream " << i;
    }
  };
  run_four([&] { c.cluster.signal_and_wait(c.w1, SIGKILL); });
  EXPECT_FALSE(planned_nodes(cluster_view(c.coord.api)).contains("n1"));

  ASSERT_TRUE(wait_for([&] { return !is_member(cluster_view(c.coord.api), "n1"); }, 10));
  std::optional<Cluster::Node> back;
  run_four([&] { back = c.cluster.restart(c.w1, "n1", c.worker_args); });
  // The join is taken in at a quiet moment (if the streams ended first, at the next request).
  ASSERT_TRUE(wait_for(
      [&] {
        stream(c.coord.api, 4);
        return planned_nodes(cluster_view(c.coord.api)).contains("n1");
      },
      30))
      << read_text(c.coord.log);
  EXPECT_EQ(stream(c.coord.api, n).text, expected);
}

// SIGTERM on a worker: it leaves, the coordinator moves its layers at a quiet moment (nothing in
// flight fails), the stream goes on with the same text, and the worker exits 0 once released.
TEST(Healing, AWorkerStoppedWithSigtermHandsOverItsLayers) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  const int n = 600;
  const std::string expected = one_node_text(model, n);
  ThreeNodes c("heal-sigterm", model, 0.6, "pipeline", 1);
  ASSERT_TRUE(c.cluster.wait_ready(c.coord, 90)) << read_text(c.coord.log);
  const std::string victim =
      cluster_view(c.coord.api)["placement"]["stages"].back().value("node_id", "");
  const Cluster::Node& leaving = victim == "n1" ? c.w1 : c.w2;
  int exit_code = -2;
  std::thread stopper;
  const Streamed s = stream(c.coord.api, n, [&](int chunk) {
    if (chunk != 60) return;
    kill(leaving.pid, SIGTERM);
    stopper = std::thread([&] { exit_code = c.cluster.wait_exit(leaving, 30); });
  });
  if (stopper.joinable()) stopper.join();
  EXPECT_EQ(exit_code, 0) << read_text(leaving.log);
  EXPECT_EQ(s.error, "");
  EXPECT_EQ(s.text, expected);
  const json after = cluster_view(c.coord.api);
  EXPECT_FALSE(planned_nodes(after).contains(victim));
  EXPECT_EQ(after["serving"].value("recoveries", -1), 0) << "nothing in flight should fail";
  EXPECT_GE(after["serving"].value("replans", 0), 1);
  std::printf("stream paused %.2f s at most while %s handed over its layers\n", s.longest_gap_s,
              victim.c_str());
}

// SIGTERM on the coordinator: new requests get 503 at once, the running one finishes, then it
// exits 0.
TEST(Healing, ACoordinatorStoppedWithSigtermFinishesWhatItRuns) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  const int n = 1000;
  const std::string expected = one_node_text(model, n);
  ThreeNodes c("heal-drain", model, 0.6, "pipeline", 2);
  ASSERT_TRUE(c.cluster.wait_ready(c.coord, 90)) << read_text(c.coord.log);
  Streamed refused;
  int exit_code = -2;
  std::thread stopper;
  const Streamed s = stream(c.coord.api, n, [&](int chunk) {
    if (chunk != 10) return;
    kill(c.coord.pid, SIGTERM);
    // Asked again and again from now on: refused as soon as the signal is handled.
    for (int i = 0; i < 200; ++i) {
      refused = stream(c.coord.api, 2);
      if (!refused.error.empty()) break;
    }
    stopper = std::thread([&] { exit_code = c.cluster.wait_exit(c.coord, 30); });
  });
  if (stopper.joinable()) stopper.join();
  EXPECT_EQ(s.error, "");
  EXPECT_EQ(s.text, expected);
  EXPECT_NE(refused.error.find("HTTP 503"), std::string::npos) << refused.error;
  EXPECT_NE(refused.error.find("shutting down"), std::string::npos) << refused.error;
  EXPECT_EQ(exit_code, 0) << read_text(c.coord.log);
}

// Another node holds the model file: when the coordinator is killed, it takes over (re-plans with
// the workers left) and serves within 10 s; a worker's API follows it.
TEST(Healing, AStandbyHolderTakesOverWhenTheCoordinatorIsKilled) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  const std::string expected = one_node_text(model, 40);
  Cluster cluster("heal-failover");
  const std::string limit = std::to_string(fs::file_size(model));  // two are needed
  const std::vector<std::string> common = {"--ctx", std::to_string(kCtx), "--parallel", "1",
                                           "--memory-limit", limit, "--parallel-mode",
                                           "pipeline", "--wait-nodes", "3"};
  const int p0 = free_port(), p1 = free_port(), p2 = free_port();
  const int c0 = free_port(), c1 = free_port(), c2 = free_port();
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.end(), common.begin(), common.end());
    return extra;
  };
  auto n0 = cluster.start_on(p0, c0, "n0",
                             with({"--model", model.string(), "--peers",
                                   fmt::format("127.0.0.1:{},127.0.0.1:{}", c1, c2)}));
  auto n1 = cluster.start_on(p1, c1, "n1",
                             with({"--model", model.string(), "--peers",
                                   fmt::format("127.0.0.1:{},127.0.0.1:{}", c0, c2)}));
  auto n2 = cluster.start_on(p2, c2, "n2",
                             {"--peers", fmt::format("127.0.0.1:{},127.0.0.1:{}", c0, c1),
                              "--memory-limit", limit});
  ASSERT_TRUE(cluster.wait_ready(n0, 90)) << read_text(n0.log);
  EXPECT_EQ(cluster_view(n0.api).value("coordinator", ""), "n0");
  EXPECT_EQ(stream(n0.api, 40).text, expected);
  EXPECT_EQ(stream(n1.api, 40).text, expected) << "the standby forwards to the coordinator";

  cluster.signal_and_wait(n0, SIGKILL);
  const auto killed = Clock::now();
  std::string served;
  while (Clock::now() - killed < std::chrono::seconds(30)) {
    const Streamed s = stream(n1.api, 40);
    if (s.error.empty()) {
      served = s.text;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const double took = std::chrono::duration<double>(Clock::now() - killed).count();
  std::printf("the standby served %.1f s after the coordinator was killed\n", took);
  EXPECT_EQ(served, expected) << read_text(n1.log);
  EXPECT_LT(took, 10.0);
  EXPECT_EQ(cluster_view(n1.api).value("coordinator", ""), "n1");
  EXPECT_EQ(stream(n2.api, 40).text, expected) << "a worker forwards to the new coordinator";
  // The old coordinator comes back: the serving one keeps the role.
  auto back = cluster.restart(n0, "n0", with({"--model", model.string(), "--peers",
                                              fmt::format("127.0.0.1:{},127.0.0.1:{}", c1, c2)}));
  ASSERT_TRUE(wait_for([&] { return is_member(cluster_view(n1.api), "n0"); }, 15));
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_EQ(cluster_view(n1.api).value("coordinator", ""), "n1");
  EXPECT_EQ(stream(n1.api, 40).text, expected);
}

}  // namespace
}  // namespace herd::testing
