// Helpers for the multi-process tests: `herd serve` nodes on 127.0.0.1 (ports chosen free at run
// time), `herd run` output, and /proc readings. A ProcessCluster kills every child it started, by
// PID, when it goes away (and a child also dies with the test process: PR_SET_PDEATHSIG).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cluster/transport/free_port.h"
#include "support/test_data.h"

namespace herd::testing {

// A port free for TCP and UDP, below the ephemeral range (see cluster/transport/free_port.h).
inline int free_port() { return cluster::free_local_port(); }

// Owns the processes of one test; the destructor kills whatever is still running.
class ProcessCluster {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ProcessCluster(const std::string& tag) : dir_(temp_dir(tag)) {
    secret_ = write_secret("secret", "cluster-test-secret-0123456789abcdef");
  }
  ~ProcessCluster() {
    for (pid_t p : pids_) kill(p, SIGKILL);
    for (pid_t p : pids_) waitpid(p, nullptr, 0);
  }
  ProcessCluster(const ProcessCluster&) = delete;
  ProcessCluster& operator=(const ProcessCluster&) = delete;

  std::filesystem::path write_secret(const std::string& name, const std::string& text) {
    std::filesystem::path p = dir_ / name;
    std::ofstream(p) << text << "\n";
    std::filesystem::permissions(
        p, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    return p;
  }
  struct Node {
    int api = 0, cluster = 0;
    pid_t pid = 0;
    std::filesystem::path log;
  };
  // `herd serve` with this node's ports, data dir, the cluster secret, one thread, and `extra`.
  // `wrapper` runs before the binary (e.g. ip netns exec NS): it must exec it in place, so that
  // the PID is the node's.
  Node start(const std::string& name, std::vector<std::string> extra,
             std::filesystem::path secret = {}, std::vector<std::string> wrapper = {}) {
    return start_on(free_port(), free_port(), name, std::move(extra), std::move(secret),
                    std::move(wrapper));
  }
  // The same node again (its ports, name and data dir), e.g. after it was killed; its log goes
  // to NAME.N.log.
  Node restart(const Node& old, const std::string& name, std::vector<std::string> extra) {
    return start_on(old.api, old.cluster, name, std::move(extra), {}, {},
                    name + "." + std::to_string(++restarts_));
  }
  // Sends `sig` (SIGKILL: the node dies at once) and waits for the process to end.
  void signal_and_wait(const Node& n, int sig) {
    kill(n.pid, sig);
    waitpid(n.pid, nullptr, 0);
    std::erase(pids_, n.pid);
  }
  Node start_on(int api, int cluster, const std::string& name, std::vector<std::string> extra,
                std::filesystem::path secret = {}, std::vector<std::string> wrapper = {},
                const std::string& log_name = "") {
    Node n{api, cluster, 0, dir_ / ((log_name.empty() ? name : log_name) + ".log")};
    std::vector<std::string> args = wrapper;
    std::vector<std::string> herd = {herd_binary().string(),
                                     "--log",
                                     "info",
                                     "serve",
                                     "--name",
                                     name,
                                     "--api-port",
                                     std::to_string(n.api),
                                     "--cluster-port",
                                     std::to_string(n.cluster),
                                     "--secret-file",
                                     (secret.empty() ? secret_ : secret).string(),
                                     "--data-dir",
                                     (dir_ / ("data-" + name)).string(),
                                     "--threads",
                                     "1"};
    args.insert(args.end(), herd.begin(), herd.end());
    args.insert(args.end(), extra.begin(), extra.end());
    const pid_t parent = getpid();
    n.pid = fork();
    if (n.pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);
      int fd = open(n.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp(argv[0], argv.data());
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
      if (waitpid(n.pid, nullptr, WNOHANG) == n.pid) {
        std::erase(pids_, n.pid);
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  // Waits until the API answers at all (any status); false when the node exits first.
  bool wait_listening(const Node& n, int seconds) {
    httplib::Client c("127.0.0.1", n.api);
    c.set_connection_timeout(1, 0);
    const auto deadline = Clock::now() + std::chrono::seconds(seconds);
    while (Clock::now() < deadline) {
      if (c.Get("/health")) return true;
      if (waitpid(n.pid, nullptr, WNOHANG) == n.pid) {
        std::erase(pids_, n.pid);
        return false;
      }
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
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::filesystem::path secret_;
  std::vector<pid_t> pids_;
  int restarts_ = 0;
};

inline std::string run_capture(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

// A field of /proc/PID/status in bytes ("VmRSS", "RssFile", ...); -1 when absent.
inline std::int64_t proc_status_bytes(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    std::istringstream fields(line.substr(field.size() + 1));
    std::int64_t kb = -1;
    fields >> kb;
    return kb < 0 ? -1 : kb * 1024;
  }
  return -1;
}

// POST /v1/completions with prompt ids, greedy; the response body as JSON (or {"error": ...}).
inline nlohmann::json complete_ids(int api_port, const std::vector<int>& prompt, int max_tokens) {
  httplib::Client c("127.0.0.1", api_port);
  c.set_read_timeout(120, 0);
  nlohmann::json body = {
      {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"ignore_eos", true}};
  auto r = c.Post("/v1/completions", body.dump(), "application/json");
  if (!r) return {{"error", "no answer"}};
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200 || j.is_discarded()) return {{"error", r->body}};
  return j;
}

// A JSON-safe copy of text (invalid UTF-8 becomes U+FFFD, as in the API's JSON).
inline std::string json_safe(const std::string& text) {
  return nlohmann::json::parse(
             nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
      .get<std::string>();
}

}  // namespace herd::testing
