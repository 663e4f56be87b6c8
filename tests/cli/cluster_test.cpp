// Multi-process tests: clusters of `herd serve` on 127.0.0.1 (ports chosen free at run time),
// compared with `herd run` on one node. Every child is killed by PID at the end, even on failure.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "cluster/control/auth.h"

#include "cli/process_cluster.h"
#include "support/test_data.h"

namespace herd::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Cluster = ProcessCluster;

// The greedy text `herd run` prints for prompt ids "1" on one node.
std::string single_node_text(const fs::path& model, int n) {
  std::string out = run_capture(herd_binary().string() + " run -m " + model.string() +
                                " --tokens 1 --ignore-eos --temp 0 -c 256 -t 1 -n " +
                                std::to_string(n) + " 2>/dev/null");
  if (!out.empty() && out.back() == '\n') out.pop_back();
  // The API sends JSON, where invalid UTF-8 (a random model emits it) becomes U+FFFD.
  return json_safe(out);
}

std::string cluster_text(int api_port, int n) {
  httplib::Client c("127.0.0.1", api_port);
  c.set_read_timeout(120, 0);
  json body = {
      {"prompt", json::array({1})}, {"max_tokens", n}, {"temperature", 0}, {"ignore_eos", true}};
  auto r = c.Post("/v1/completions", body.dump(), "application/json");
  if (!r || r->status != 200) return "<error " + (r ? r->body : std::string("no answer")) + ">";
  return json::parse(r->body)["choices"][0]["text"];
}

std::string read_log(const fs::path& p) {
  return read_text(p);
}

// mode: the coordinator's --parallel-mode. With "auto" the planner may leave nodes out.
void expect_cluster_matches_one_node(const fs::path& model, int nodes, int n_tokens,
                                     const std::string& mode = "pipeline") {
  const std::string expected = single_node_text(model, n_tokens);
  ASSERT_FALSE(expected.empty());
  Cluster cluster("cluster-" + std::to_string(nodes));
  const auto size = fs::file_size(model);
  const std::string limit = std::to_string(size * 2 / nodes);
  // 512 positions of the f16 KV cache: with the weights, more than nodes - 1 limits hold.
  std::vector<std::string> args = {"--model",        model.string(), "--wait-nodes",
                                   std::to_string(nodes), "--memory-limit", limit,
                                   "--ctx",          "512",          "--wait-timeout",
                                   "30"};
  args.insert(args.end(), {"--parallel-mode", mode});
  auto coord = cluster.start("n0", args);
  std::vector<Cluster::Node> workers;
  for (int i = 1; i < nodes; ++i)
    workers.push_back(cluster.start(
        "n" + std::to_string(i),
        {"--peers", "127.0.0.1:" + std::to_string(coord.cluster), "--memory-limit", limit}));
  ASSERT_TRUE(cluster.wait_ready(coord, 90)) << read_log(coord.log);
  httplib::Client c("127.0.0.1", coord.api);
  auto view = json::parse(c.Get("/v1/cluster")->body);
  if (mode == "auto") {
    const std::string chosen = view["placement"].value("mode", "");
    EXPECT_TRUE(chosen == "pipeline" || chosen == "tensor" || chosen == "hybrid") << chosen;
    EXPECT_GE(view["placement"]["stages"].size(), 2u) << view["placement"].value("explain", "");
  } else {
    EXPECT_EQ(view["placement"]["stages"].size(), static_cast<std::size_t>(nodes))
        << view["placement"].value("explain", "");
    EXPECT_EQ(view["placement"].value("mode", ""), mode);
  }
  EXPECT_EQ(cluster_text(coord.api, n_tokens), expected) << model;
  // A worker forwards to the coordinator.
  ASSERT_TRUE(cluster.wait_ready(workers[0], 10));
  EXPECT_EQ(cluster_text(workers[0].api, n_tokens), expected);
}

TEST(Cluster, TwoAndThreeNodesMatchOneNodeOnStories260K) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  expect_cluster_matches_one_node(model, 2, 40);
  expect_cluster_matches_one_node(model, 3, 40);
}

TEST(Cluster, ThreeNodesMatchOneNodeOnGoldenQwen2AndDeepSeek2) {
  HERD_REQUIRE_SHARED(qwen, "golden/qwen2-f16.gguf");
  HERD_REQUIRE_SHARED(deepseek, "golden/deepseek2-f16.gguf");
  expect_cluster_matches_one_node(qwen, 3, 16);
  expect_cluster_matches_one_node(deepseek, 2, 16);
}

// Tensor parallelism through processes: every node a share of every layer (heads, feed-forward
// columns; experts for the MoE models), greedy text identical to one node on float models.
TEST(Cluster, TensorParallelGroupsMatchOneNodeOnGoldenModels) {
  HERD_REQUIRE_SHARED(llama, "golden/llama-f32.gguf");
  HERD_REQUIRE_SHARED(moe, "golden/qwen3moe-f16.gguf");
  HERD_REQUIRE_SHARED(deepseek, "golden/deepseek2-f16.gguf");
  expect_cluster_matches_one_node(llama, 2, 16, "tensor");
  expect_cluster_matches_one_node(llama, 3, 16, "tensor");
  expect_cluster_matches_one_node(moe, 2, 16, "tensor");
  expect_cluster_matches_one_node(deepseek, 3, 16, "tensor");
}

// The default: the coordinator measures the links and lets the planner choose (on 127.0.0.1,
// where no node holds the model and its cache alone).
TEST(Cluster, AutoPlanFromMeasuredLinksMatchesOneNode) {
  HERD_REQUIRE_SHARED(llama, "golden/llama-f32.gguf");
  expect_cluster_matches_one_node(llama, 3, 16, "auto");
}

// Many requests at once through a pipeline of processes: several batches in flight, each
// request's greedy answer exactly what it is alone (each computed afresh: cache_prompt false).
TEST(Cluster, ConcurrentRequestsThroughAPipelineEqualThemselvesAlone) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  Cluster cluster("cluster-concurrent");
  const std::string limit = std::to_string(fs::file_size(model));
  auto coord = cluster.start("n0", {"--model", model.string(), "--wait-nodes", "3", "--ctx", "256",
                                    "--parallel", "6", "--memory-limit", limit,
                                    "--parallel-mode", "pipeline"});
  auto w1 = cluster.start("n1", {"--peers", "127.0.0.1:" + std::to_string(coord.cluster),
                                 "--memory-limit", limit});
  auto w2 = cluster.start("n2", {"--peers", "127.0.0.1:" + std::to_string(coord.cluster),
                                 "--memory-limit", limit});
  ASSERT_TRUE(cluster.wait_ready(coord, 90)) << read_log(coord.log);
  httplib::Client c("127.0.0.1", coord.api);
  const json view = json::parse(c.Get("/v1/cluster")->body);
  ASSERT_EQ(view["placement"]["stages"].size(), 3u) << view["placement"].value("explain", "");
  auto ask = [&](const std::vector<int>& prompt) {
    httplib::Client client("127.0.0.1", coord.api);
    client.set_read_timeout(120, 0);
    const json body = {{"prompt", prompt},   {"max_tokens", 32},      {"temperature", 0},
                       {"ignore_eos", true}, {"cache_prompt", false}};
    auto r = client.Post("/v1/completions", body.dump(), "application/json");
    if (!r || r->status != 200) return std::string("<failed>");
    return json::parse(r->body)["choices"][0]["text"].get<std::string>();
  };
  std::vector<std::vector<int>> prompts;
  for (int i = 0; i < 6; ++i) {
    std::vector<int> p = {1};
    for (int j = 0; j < 3 + 4 * i; ++j) p.push_back(280 + (29 * i + 7 * j) % 220);
    prompts.push_back(p);
  }
  std::vector<std::string> alone, together(prompts.size());
  for (const auto& p : prompts) alone.push_back(ask(p));
  std::vector<std::thread> clients;
  for (std::size_t i = 0; i < prompts.size(); ++i)
    clients.emplace_back([&, i] { together[i] = ask(prompts[i]); });
  for (auto& t : clients) t.join();
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_NE(alone[i], "<failed>");
    EXPECT_EQ(together[i], alone[i]) << "request " << i;
  }
  const json after = json::parse(c.Get("/v1/cluster")->body);
  EXPECT_EQ(after["serving"]["max_running"], 6);
  EXPECT_GT(after["serving"]["batches"].get<int>(), 0);
}

TEST(Cluster, NodeWithWrongSecretIsRefused) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  Cluster cluster("wrong-secret");
  auto coord =
      cluster.start("n0", {"--model", model.string(), "--wait-nodes", "2", "--wait-timeout", "3"});
  auto bad = cluster.write_secret("bad", "a-different-secret-0123456789abcdef");
  cluster.start("intruder", {"--peers", "127.0.0.1:" + std::to_string(coord.cluster)}, bad);
  EXPECT_EQ(cluster.wait_exit(coord, 20), 1) << "the coordinator should give up waiting";
  const std::string log = read_log(coord.log);
  EXPECT_NE(log.find("refused a message"), std::string::npos) << log;
  EXPECT_NE(log.find("only 1 of the 2 expected nodes"), std::string::npos) << log;
}

TEST(Cluster, MalformedRequestsGet4xxAndTheServerKeepsServing) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  Cluster cluster("malformed");
  auto coord = cluster.start("n0", {"--model", model.string(), "--wait-nodes", "2", "--ctx", "128",
                                    "--memory-limit", std::to_string(fs::file_size(model))});
  auto worker = cluster.start("n1", {"--peers", "127.0.0.1:" + std::to_string(coord.cluster),
                                     "--memory-limit", std::to_string(fs::file_size(model))});
  ASSERT_TRUE(cluster.wait_ready(coord, 60)) << read_log(coord.log);
  ASSERT_TRUE(cluster.wait_ready(worker, 10));
  for (int port : {coord.api, worker.api}) {
    httplib::Client c("127.0.0.1", port);
    for (const char* bad : {"{", R"({"messages":[]})", R"({"prompt":"x","temperature":9})"}) {
      auto r = c.Post("/v1/completions", bad, "application/json");
      ASSERT_TRUE(r);
      EXPECT_GE(r->status, 400) << bad;
      EXPECT_LT(r->status, 500) << bad;
    }
    auto too_long =
        c.Post("/v1/completions", R"({"prompt":"Once","max_tokens":500})", "application/json");
    ASSERT_TRUE(too_long);
    EXPECT_NE(too_long->body.find("context_length_exceeded"), std::string::npos) << too_long->body;
    auto ok = c.Post("/v1/completions", R"({"prompt":"Once","max_tokens":8,"temperature":0})",
                     "application/json");
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200) << ok->body;
  }
}

// 10^4 malformed datagrams on a live node's control port (garbage, wrong secret, a valid MAC
// over a payload that breaks the schema, replays, oversized): the node refuses each (and logs a
// flood as a few lines), its membership stays as it was and it keeps serving exactly.
TEST(Cluster, ControlPortSurvivesTenThousandMalformedDatagrams) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  Cluster cluster("udp-fuzz");
  const std::string limit = std::to_string(fs::file_size(model));
  auto coord = cluster.start("n0", {"--model", model.string(), "--wait-nodes", "2", "--ctx", "128",
                                    "--memory-limit", limit, "--parallel-mode", "pipeline"});
  auto worker = cluster.start("n1", {"--peers", "127.0.0.1:" + std::to_string(coord.cluster),
                                     "--memory-limit", limit});
  ASSERT_TRUE(cluster.wait_ready(coord, 60)) << read_log(coord.log);
  const std::string before = cluster_text(coord.api, 24);

  const cluster::Secret secret("cluster-test-secret-0123456789abcdef");
  const cluster::Secret stranger("some-other-cluster-secret-0123456789");
  auto envelope = [](const cluster::Secret& key, const std::string& payload, std::int64_t ts,
                     const std::string& nonce) {
    const std::string mac = cluster::to_hex(cluster::hmac_sha256(
        key, "herd/1\n" + nonce + "\n" + std::to_string(ts) + "\n" + payload));
    return json{{"v", 1}, {"payload", payload}, {"nonce", nonce}, {"ts", ts}, {"mac", mac}}
        .dump();
  };
  const std::vector<std::string> bad_payloads = {
      "", "{}", "[]", R"({"type":"heartbeat"})", R"({"type":"heartbeat","seq":"x","id":"a"})",
      R"({"type":"nope","seq":1,"id":"a"})", R"({"type":"leave","seq":1,"id":"bad id!"})",
      R"({"type":"join","seq":1,"id":"a","address":{"host":5}})", std::string(20000, '{')};
  std::mt19937 rng(77);
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(coord.cluster));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  const std::string replayed = envelope(secret, bad_payloads[1], now, cluster::make_nonce());
  for (int i = 0; i < 10000; ++i) {
    std::string d;
    switch (i % 6) {
      case 0:
        d.resize(rng() % 1500);
        for (char& c : d) c = static_cast<char>(rng());
        break;
      case 1:
        d = envelope(stranger, R"({"type":"heartbeat","seq":1,"id":"x"})", now,
                     cluster::make_nonce());
        break;
      case 2:
        d = envelope(secret, bad_payloads[rng() % bad_payloads.size()], now, cluster::make_nonce());
        break;
      case 3:
        d = replayed;
        break;
      case 4:
        d = envelope(secret, bad_payloads[1], now - 120000, cluster::make_nonce());  // stale
        break;
      default:
        d = std::string(60000, 'x');
        break;
    }
    sendto(fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    if (i % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  close(fd);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_EQ(cluster_text(coord.api, 24), before);
  httplib::Client c("127.0.0.1", coord.api);
  const json view = json::parse(c.Get("/v1/cluster")->body);
  EXPECT_EQ(view["members"].size(), 2u) << view["members"].dump();
  // A flood is a few log lines, not ten thousand.
  const std::string log = read_log(coord.log);
  std::size_t lines = 0;
  for (std::size_t at = 0; (at = log.find("refused a message", at)) != std::string::npos; ++at)
    ++lines;
  EXPECT_GT(lines, 0u);
  EXPECT_LT(lines, 30u);
}

}  // namespace
}  // namespace herd::testing
