// herd demo: a cluster of `herd serve` processes on 127.0.0.1 (only the first holds the model),
// one streamed answer through the API, the placement and the speed; then everything is stopped.
#include <fmt/format.h>
#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/local_cluster.h"
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

json get_json(httplib::Client& client, const std::string& path) {
  auto r = client.Get(path);
  if (!r || r->status != 200)
    fail("GET {} failed: {}", path, r ? r->body : httplib::to_string(r.error()));
  return json::parse(r->body);
}

// Streams one completion from the coordinator's API to stdout, then prints the speed.
void ask(int api_port, const DemoOptions& o) {
  httplib::Client client("127.0.0.1", api_port);
  client.set_read_timeout(120, 0);
  json view = get_json(client, "/v1/cluster");
  fmt::print("\nplacement:\n{}\n", view["placement"].value("explain", ""));
  fmt::print("prompt: {}\n---\n{}", o.prompt, o.prompt);
  std::fflush(stdout);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = json{{"prompt", o.prompt},
                  {"max_tokens", o.max_tokens},
                  {"temperature", 0},
                  {"stream", true},
                  {"stream_options", {{"include_usage", true}}}}
                 .dump();
  req.set_header("Content-Type", "application/json");
  std::string pending;
  std::string error;
  const auto t0 = Clock::now();
  double ttft_ms = -1;
  req.content_receiver = [&](const char* data, std::size_t n, std::uint64_t, std::uint64_t) {
    pending.append(data, n);
    for (std::size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
      std::string event = pending.substr(0, end);
      pending.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0 || event == "data: [DONE]") continue;
      json chunk = json::parse(event.substr(6), nullptr, false);
      if (chunk.is_discarded()) continue;
      if (chunk.contains("error")) error = chunk["error"].value("message", "unknown error");
      if (!chunk.contains("choices") || chunk["choices"].empty()) continue;
      std::string text = chunk["choices"][0].value("text", "");
      if (!text.empty() && ttft_ms < 0)
        ttft_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      fmt::print("{}", text);
      std::fflush(stdout);
    }
    return true;
  };
  auto result = client.send(req);
  const double total_s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!result) fail("the completion request failed: {}", httplib::to_string(result.error()));
  if (result->status != 200) fail("the completion request failed: HTTP {}", result->status);
  if (!error.empty()) fail("the generation failed: {}", error);
  fmt::print("\n---\n");
  auto metrics_reply = client.Get("/metrics");
  const std::string metrics = metrics_reply ? metrics_reply->body : "";
  auto metric = [&](const std::string& name) {
    auto at = metrics.find("\n" + name + " ");
    return at == std::string::npos ? 0.0 : std::atof(metrics.c_str() + at + name.size() + 2);
  };
  fmt::print(
      "time to first token {:.1f} ms (client side); decode {:.1f} tokens/s (server); "
      "{} tokens in {:.2f} s\n",
      ttft_ms, metric("herd_decode_tokens_per_second"), metric("herd_generated_tokens_total"),
      total_s);
}

int run_demo(DemoOptions o) {
  if (o.nodes < 1 || o.nodes > 8) fail_argument("--nodes must be between 1 and 8");
  LocalClusterOptions co;
  co.nodes = o.nodes;
  co.threads_per_node = 1;
  co.n_ctx = 256;
  LocalCluster cluster(co);
  fs::path model = o.model.empty() ? find_model() : fs::path(o.model);
  if (model.empty()) {
    model = cluster.dir() / "synthetic.gguf";
    fmt::print(
        "stories260K.gguf not found ($HERD_MODELS, ../shared/models): writing a synthetic "
        "model to {}\n",
        model.string());
    model::SyntheticSpec spec;
    spec.n_layer = 6;
    spec.n_ctx = 512;
    model::write_synthetic_model(spec, model.string());
  }
  // Each node offers just enough that the model has to be split across all of them.
  cluster.set_memory_limit(split_memory_limit(*load_model(model.string()), co.n_ctx, o.nodes));
  cluster.start(model);
  fmt::print("started {} node(s) (logs in {}); waiting for the cluster...\n", o.nodes,
             cluster.dir().string());
  cluster.wait_ready(120);
  try {
    ask(cluster.api_port(0), o);
  } catch (...) {
    cluster.keep_files();
    fmt::print(stderr, "the node logs are kept in {}\n", cluster.dir().string());
    throw;
  }
  cluster.stop();
  fmt::print("stopped all nodes\n");
  return 0;
}

}  // namespace

CommandFn add_demo_command(CLI::App& app) {
  auto o = std::make_shared<DemoOptions>();
  auto* cmd = app.add_subcommand(
      "demo", "Start a local cluster of herd serve processes and ask it something");
  cmd->add_option("-m,--model", o->model, "GGUF model (default: stories260K.gguf, else synthetic)");
  cmd->add_option("--nodes", o->nodes, "Nodes to start")->capture_default_str();
  cmd->add_option("-p,--prompt", o->prompt, "Prompt")->capture_default_str();
  cmd->add_option("-n,--n-predict", o->max_tokens, "Tokens to generate")->capture_default_str();
  return [o] { return run_demo(*o); };
}

}  // namespace herd::cli
