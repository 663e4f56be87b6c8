#include "cli/local_cluster.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include "cluster/transport/free_port.h"
#include "util/error.h"

namespace herd::cli {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::uint64_t split_memory_limit(const model::Model& model, int n_ctx, int nodes) {
  if (nodes < 2) return 0;
  double bytes =
      static_cast<double>(model.kv_bytes_per_token_per_layer()) * n_ctx * model.n_layer();
  for (const auto& t : model.file().tensors()) bytes += static_cast<double>(t.n_bytes);
  return static_cast<std::uint64_t>(0.95 * bytes / (nodes - 1));
}


namespace {

// 32 random bytes as hex, like `herd secret`.
std::string random_secret() {
  std::random_device rd;
  std::string hex;
  for (int i = 0; i < 32; ++i) hex += fmt::format("{:02x}", rd() & 0xff);
  return hex;
}

pid_t spawn(const std::vector<std::string>& args, const fs::path& log) {
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) fail("fork failed: {}", std::strerror(errno));
  if (pid == 0) {
    // A node must not outlive the command that started it, even when that one is killed.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

LocalCluster::LocalCluster(LocalClusterOptions options)
    : options_(std::move(options)),
      dir_(fs::temp_directory_path() /
           fmt::format("herd-local-{}-{:x}", getpid(), Clock::now().time_since_epoch().count())) {
  if (options_.nodes < 1 || options_.nodes > 16)
    fail_argument("the number of nodes must be 1 to 16");
  fs::create_directories(dir_);
  secret_ = dir_ / "secret";
  std::ofstream(secret_) << random_secret() << "\n";
  fs::permissions(secret_, fs::perms::owner_read | fs::perms::owner_write);
}

LocalCluster::~LocalCluster() {
  stop();
  std::error_code ignored;
  if (!keep_) fs::remove_all(dir_, ignored);
}

fs::path LocalCluster::log_path(int node) const {
  return dir_ / fmt::format("node-{}.log", node);
}

void LocalCluster::start(const fs::path& model) {
  const int n = options_.nodes;
  for (int i = 0; i < n; ++i) {
    api_ports_.push_back(cluster::free_local_port());
    cluster_ports_.push_back(cluster::free_local_port());
  }
  for (int i = 0; i < n; ++i) {
    std::vector<std::string> args = {"herd",
                                     "--log",
                                     options_.log_level,
                                     "serve",
                                     "--name",
                                     fmt::format("node-{}", i),
                                     "--api-port",
                                     std::to_string(api_ports_[i]),
                                     "--cluster-port",
                                     std::to_string(cluster_ports_[i]),
                                     "--secret-file",
                                     secret_.string(),
                                     "--data-dir",
                                     (dir_ / fmt::format("data-{}", i)).string(),
                                     "--ctx",
                                     std::to_string(options_.n_ctx),
                                     "--threads",
                                     std::to_string(options_.threads_per_node)};
    if (options_.parallel > 0)
      args.insert(args.end(), {"--parallel", std::to_string(options_.parallel)});
    if (options_.memory_limit > 0 && n > 1)
      args.insert(args.end(), {"--memory-limit", std::to_string(options_.memory_limit)});
    if (i == 0) {
      args.insert(args.end(), {"--model", model.string(), "--wait-nodes", std::to_string(n)});
      if (!options_.parallel_mode.empty())
        args.insert(args.end(), {"--parallel-mode", options_.parallel_mode});
    } else {
      args.insert(args.end(), {"--peers", fmt::format("127.0.0.1:{}", cluster_ports_[0])});
    }
    pids_.push_back(spawn(args, log_path(i)));
  }
}

void LocalCluster::wait_ready(int seconds) {
  HERD_CHECK(!pids_.empty());
  httplib::Client client("127.0.0.1", api_ports_[0]);
  client.set_connection_timeout(1, 0);
  const auto deadline = Clock::now() + std::chrono::seconds(seconds);
  for (;;) {
    auto r = client.Get("/health");
    if (r && r->status == 200) return;
    int status = 0;
    if (waitpid(pids_[0], &status, WNOHANG) == pids_[0]) {
      pids_.erase(pids_.begin());
      keep_files();
      fail("the coordinator exited; see {}", log_path(0).string());
    }
    if (Clock::now() > deadline) {
      keep_files();
      fail("the cluster was not ready within {} s; see the logs in {}", seconds, dir_.string());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

void LocalCluster::stop() {
  for (pid_t p : pids_) kill(p, SIGTERM);
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  for (pid_t p : pids_) {
    while (waitpid(p, nullptr, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        kill(p, SIGKILL);
        waitpid(p, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  pids_.clear();
}

}  // namespace herd::cli
