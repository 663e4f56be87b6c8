// herd demo: a cluster of `herd serve` processes on 127.0.0.1 (only the first holds the model),
// one streamed answer through the API, the placement and the speed; then everything is stopped.
#include <fcntl.h>
#include <fmt/format.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/commands.h"
#include "cli/common.h"
#include "model/synthetic_model.h"
#include "util/error.h"

namespace herd::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct DemoOptions {
  std::string model;
  int nodes = 3;
  std::string prompt = "Once upon a time";
  int max_tokens = 64;
};

// A port free for both TCP and UDP right now (the cluster port uses both).
int free_port() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    int t = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bind(t, reinterpret_cast<sockaddr*>(&a), sizeof a);
    getsockname(t, reinterpret_cast<sockaddr*>(&a), &len);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    const bool udp_free = bind(u, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    const int port = ntohs(a.sin_port);
    close(t);
    close(u);
    if (udp_free) return port;
  }
  fail("no free port on 127.0.0.1");
}

fs::path find_model() {
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("HERD_MODELS")) dirs.emplace_back(env);
  const fs::path exe = fs::read_symlink("/proc/self/exe");
  for (fs::path d = exe.parent_path(); !d.empty() && d != d.root_path(); d = d.parent_path())
    dirs.push_back(d / ".." / "shared" / "models");
  dirs.push_back(fs::current_path() / ".." / "shared" / "models");
  dirs.push_back(fs::current_path() / "shared" / "models");
  for (const auto& d : dirs) {
    if (fs::exists(d / "stories260K.gguf")) return fs::canonical(d / "stories260K.gguf");
  }
  return {};
}

pid_t spawn(const std::vector<std::string>& args, const fs::path& log) {
  pid_t pid = fork();
  if (pid < 0) fail("fork failed");
  if (pid == 0) {
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

// SIGTERM, up to 5 s, then SIGKILL: every child is gone when this returns.
void stop_all(std::vector<pid_t>& pids) {
  for (pid_t p : pids) kill(p, SIGTERM);
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  for (pid_t p : pids) {
    while (waitpid(p, nullptr, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        kill(p, SIGKILL);
        waitpid(p, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  pids.clear();
}

int run_demo(DemoOptions o) {
  if (o.nodes < 1 || o.nodes > 8) fail_argument("--nodes must be between 1 and 8");
  const fs::path dir = fs::temp_directory_path() / fmt::format("herd-demo-{}", getpid());
  fs::create_directories(dir);
  fs::path model = o.model.empty() ? find_model() : fs::path(o.model);
  if (model.empty()) {
    model = dir / "synthetic.gguf";
    fmt::print("stories260K.gguf not found ($HERD_MODELS, ../shared/models): writing a synthetic "
               "model to {}\n", model.string());
    model::SyntheticSpec spec;
    spec.n_layer = 6;
    spec.n_ctx = 512;
    model::write_synthetic_model(spec, model.string());
  }
  const fs::path secret = dir / "secret";
  {
    std::ofstream(secret) << "herd-demo-" << getpid() << "-0123456789abcdef\n";
    fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write);
  }
  // Each node offers a bit more than its 1/N share, so the model must be split across all.
  const auto size = fs::file_size(model);
  const std::uint64_t limit = size * 2 / o.nodes;  // room for the KV cache and whole layers
  std::vector<int> api(o.nodes), cport(o.nodes);
  for (int i = 0; i < o.nodes; ++i) {
    api[i] = free_port();
    cport[i] = free_port();
  }
  std::vector<pid_t> pids;
  try {
    for (int i = 0; i < o.nodes; ++i) {
      std::vector<std::string> args = {"herd", "--log", "info", "serve", "--name", fmt::format("node-{}", i),
                                       "--api-port", std::to_string(api[i]), "--cluster-port",
                                       std::to_string(cport[i]), "--secret-file", secret.string(),
                                       "--data-dir", (dir / fmt::format("data-{}", i)).string(),
                                       "--ctx", "256", "--threads", "1"};
      if (o.nodes > 1) {
        args.insert(args.end(), {"--memory-limit", std::to_string(limit)});
      }
      if (i == 0) {
        args.insert(args.end(), {"--model", model.string(), "--wait-nodes", std::to_string(o.nodes)});
      } else {
        args.insert(args.end(), {"--peers", fmt::format("127.0.0.1:{}", cport[0])});
      }
      pids.push_back(spawn(args, dir / fmt::format("node-{}.log", i)));
    }
    fmt::print("started {} node(s) (logs in {}); waiting for the cluster...\n", o.nodes, dir.string());
    httplib::Client client("127.0.0.1", api[0]);
    client.set_read_timeout(120, 0);
    const auto deadline = Clock::now() + std::chrono::seconds(120);
    for (;;) {
      auto r = client.Get("/health");
      if (r && r->status == 200) break;
      int status = 0;
      if (waitpid(pids[0], &status, WNOHANG) == pids[0]) {
        pids.erase(pids.begin());
        fail("the coordinator exited; see {}", (dir / "node-0.log").string());
      }
      if (Clock::now() > deadline) fail("the cluster was not ready within 120 s; see the logs in {}", dir.string());
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    auto view = json::parse(client.Get("/v1/cluster")->body);
    fmt::print("\nplacement:\n{}\n", view["placement"].value("explain", ""));
    fmt::print("prompt: {}\n---\n{}", o.prompt, o.prompt);
    std::fflush(stdout);
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = json{{"prompt", o.prompt}, {"max_tokens", o.max_tokens}, {"temperature", 0},
                    {"stream", true}, {"stream_options", {{"include_usage", true}}}}.dump();
    req.set_header("Content-Type", "application/json");
    std::string pending;
    const auto t0 = Clock::now();
    double ttft_ms = -1;
    int pieces = 0;
    req.content_receiver = [&](const char* data, std::size_t n, std::uint64_t, std::uint64_t) {
      pending.append(data, n);
      for (std::size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
        std::string event = pending.substr(0, end);
        pending.erase(0, end + 2);
        if (event.rfind("data: ", 0) != 0 || event == "data: [DONE]") continue;
        json chunk = json::parse(event.substr(6), nullptr, false);
        if (chunk.is_discarded()) continue;
        if (chunk.contains("error")) fmt::print("\n[error: {}]", chunk["error"].value("message", ""));
        if (!chunk.contains("choices") || chunk["choices"].empty()) continue;
        std::string text = chunk["choices"][0].value("text", "");
        if (!text.empty() && ttft_ms < 0)
          ttft_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        pieces += !text.empty();
        fmt::print("{}", text);
        std::fflush(stdout);
      }
      return true;
    };
    auto result = client.send(req);
    const double total_s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!result) fail("the completion request failed: {}", httplib::to_string(result.error()));
    fmt::print("\n---\n");
    std::string metrics = client.Get("/metrics")->body;
    auto metric = [&](const std::string& name) {
      auto at = metrics.find("\n" + name + " ");
      return at == std::string::npos ? 0.0 : std::atof(metrics.c_str() + at + name.size() + 2);
    };
    fmt::print("time to first token {:.1f} ms (client side); decode {:.1f} tokens/s (server); "
               "{} tokens in {:.2f} s\n", ttft_ms, metric("herd_decode_tokens_per_second"),
               metric("herd_generated_tokens_total"), total_s);
  } catch (...) {
    stop_all(pids);
    throw;
  }
  stop_all(pids);
  fs::remove_all(dir);
  fmt::print("stopped all nodes\n");
  return 0;
}

}  // namespace

CommandFn add_demo_command(CLI::App& app) {
  auto o = std::make_shared<DemoOptions>();
  auto* cmd = app.add_subcommand("demo", "Start a local cluster of herd serve processes and ask it something");
  cmd->add_option("-m,--model", o->model, "GGUF model (default: stories260K.gguf, else synthetic)");
  cmd->add_option("--nodes", o->nodes, "Nodes to start")->capture_default_str();
  cmd->add_option("-p,--prompt", o->prompt, "Prompt")->capture_default_str();
  cmd->add_option("-n,--n-predict", o->max_tokens, "Tokens to generate")->capture_default_str();
  return [o] { return run_demo(*o); };
}

}  // namespace herd::cli
