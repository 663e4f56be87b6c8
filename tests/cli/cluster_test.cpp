// Multi-process tests: clusters of `herd serve` on 127.0.0.1 (ports chosen free at run time),
// compared with `herd run` on one node. Every child is killed by PID at the end, even on failure.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/test_data.h"

namespace herd::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

int free_port() {
  for (;;) {
    int t = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bind(t, reinterpret_cast<sockaddr*>(&a), sizeof a);
    getsockname(t, reinterpret_cast<sockaddr*>(&a), &len);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    const bool ok = bind(u, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(t);
    close(u);
    if (ok) return ntohs(a.sin_port);
  }
}

// Owns the processes of one test; the destructor kills whatever is still running.
class Cluster {
 public:
  explicit Cluster(const std::string& tag) : dir_(temp_dir(tag)) {
    secret_ = write_secret("secret", "cluster-test-secret-0123456789abcdef");
  }
  ~Cluster() {
    for (pid_t p : pids_) kill(p, SIGKILL);
    for (pid_t p : pids_) waitpid(p, nullptr, 0);
  }
  fs::path write_secret(const std::string& name, const std::string& text) {
    fs::path p = dir_ / name;
    std::ofstream(p) << text << "\n";
    fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write);
    return p;
  }
  struct Node {
    int api = 0, cluster = 0;
    pid_t pid = 0;
    fs::path log;
  };
  Node start(const std::string& name, std::vector<std::string> extra, fs::path secret = {}) {
    Node n{free_port(), free_port(), 0, dir_ / (name + ".log")};
    std::vector<std::string> args = {herd_binary().string(), "--log", "info", "serve", "--name", name,
                                     "--api-port", std::to_string(n.api), "--cluster-port",
                                     std::to_string(n.cluster), "--secret-file",
                                     (secret.empty() ? secret_ : secret).string(), "--data-dir",
                                     (dir_ / ("data-" + name)).string(), "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    n.pid = fork();
    if (n.pid == 0) {
      int fd = open(n.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    pids_.push_back(n.pid);
    return n;
  }
  // Waits for /health 200; false when the node exits or the time runs out.
  bool wait_ready(const Node& n, int seconds) {
    httplib::Client c("127.0.0.1", n.api);
    c.set_connection_timeout(1, 0);
    const auto deadline = Clock::now() + std::chrono::seconds(seconds);
    while (Clock::now() < deadline) {
      auto r = c.Get("/health");
      if (r && r->status == 200) return true;
      if (waitpid(n.pid, nullptr, WNOHANG) == n.pid) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  // Waits for the process to exit; its exit code, or -1 on timeout.
  int wait_exit(const Node& n, int seconds) {
    const auto deadline = Clock::now() + std::chrono::seconds(seconds);
    int status = 0;
    while (Clock::now() < deadline) {
      if (waitpid(n.pid, &status, WNOHANG) == n.pid) {
        std::erase(pids_, n.pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }
  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
  fs::path secret_;
  std::vector<pid_t> pids_;
};

std::string run_capture(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

// The greedy text `herd run` prints for prompt ids "1" on one node.
std::string single_node_text(const fs::path& model, int n) {
  std::string out = run_capture(herd_binary().string() + " run -m " + model.string() +
                                " --tokens 1 --ignore-eos --temp 0 -c 256 -t 1 -n " + std::to_string(n) +
                                " 2>/dev/null");
  if (!out.empty() && out.back() == '\n') out.pop_back();
  // The API sends JSON, where invalid UTF-8 (a random model emits it) becomes U+FFFD.
  return json::parse(json(out).dump(-1, ' ', false, json::error_handler_t::replace)).get<std::string>();
}

std::string cluster_text(int api_port, int n) {
  httplib::Client c("127.0.0.1", api_port);
  c.set_read_timeout(120, 0);
  json body = {{"prompt", json::array({1})}, {"max_tokens", n}, {"temperature", 0}, {"ignore_eos", true}};
  auto r = c.Post("/v1/completions", body.dump(), "application/json");
  if (!r || r->status != 200) return "<error " + (r ? r->body : std::string("no answer")) + ">";
  return json::parse(r->body)["choices"][0]["text"];
}

std::string read_log(const fs::path& p) { return read_text(p); }

void expect_cluster_matches_one_node(const fs::path& model, int nodes, int n_tokens) {
  const std::string expected = single_node_text(model, n_tokens);
  ASSERT_FALSE(expected.empty());
  Cluster cluster("cluster-" + std::to_string(nodes));
  const auto size = fs::file_size(model);
  const std::string limit = std::to_string(size * 2 / nodes);
  auto coord = cluster.start("n0", {"--model", model.string(), "--wait-nodes", std::to_string(nodes),
                                    "--memory-limit", limit, "--ctx", "256", "--wait-timeout", "30"});
  std::vector<Cluster::Node> workers;
  for (int i = 1; i < nodes; ++i)
    workers.push_back(cluster.start("n" + std::to_string(i),
                                    {"--peers", "127.0.0.1:" + std::to_string(coord.cluster),
                                     "--memory-limit", limit}));
  ASSERT_TRUE(cluster.wait_ready(coord, 90)) << read_log(coord.log);
  httplib::Client c("127.0.0.1", coord.api);
  auto view = json::parse(c.Get("/v1/cluster")->body);
  EXPECT_EQ(view["placement"]["stages"].size(), static_cast<std::size_t>(nodes))
      << view["placement"].value("explain", "");
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

TEST(Cluster, NodeWithWrongSecretIsRefused) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  Cluster cluster("wrong-secret");
  auto coord = cluster.start("n0", {"--model", model.string(), "--wait-nodes", "2", "--wait-timeout", "3"});
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
    auto too_long = c.Post("/v1/completions", R"({"prompt":"Once","max_tokens":500})", "application/json");
    ASSERT_TRUE(too_long);
    EXPECT_NE(too_long->body.find("context_length_exceeded"), std::string::npos) << too_long->body;
    auto ok = c.Post("/v1/completions", R"({"prompt":"Once","max_tokens":8,"temperature":0})", "application/json");
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200) << ok->body;
  }
}

}  // namespace
}  // namespace herd::testing
