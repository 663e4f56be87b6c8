// `herd demo` and `herd bench --nodes`: each starts its own local cluster of `herd serve`
// processes; both must work end to end and leave no process behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/process_cluster.h"
#include "support/test_data.h"

namespace herd::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Finished {
  int pid = 0;  // of the herd process (the shell execs it)
  int exit_code = -1;
  std::string output;
};

// Runs `herd args...` in `cwd` with `env` ("NAME=value ..."), stdout and stderr together.
Finished run_herd(const fs::path& binary, const std::string& args, const fs::path& cwd,
                  const std::string& env = "") {
  const std::string command = "cd '" + cwd.string() + "' && " + env +
                              " timeout 120 sh -c 'echo $$; exec " + binary.string() + " " + args +
                              "' 2>&1";
  Finished f;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return f;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) f.output.append(buf, n);
  const int status = pclose(p);
  f.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::istringstream first(f.output);
  first >> f.pid;
  return f;
}

// Processes still running whose command line names the cluster folder of herd process `pid`
// (LocalCluster puts every node's data dir under /tmp/herd-local-<pid>-...).
std::vector<std::string> leftover_nodes(int pid) {
  const std::string mark = "herd-local-" + std::to_string(pid) + "-";
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    const std::string cmdline = read_text(entry.path() / "cmdline");
    if (cmdline.find(mark) != std::string::npos) found.push_back(name);
  }
  return found;
}

// The JSON objects of `--json` output: one per line starting with '{' (progress goes to stderr,
// which run_herd mixes in).
std::vector<json> json_lines(const std::string& output) {
  std::vector<json> rows;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("{", 0) == 0) rows.push_back(json::parse(line));
  }
  return rows;
}

TEST(DemoCommand, RunsEndToEndFromTheRepositoryAndLeavesNoProcessBehind) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  Finished f = run_herd(herd_binary(), "demo -n 16", HERD_SOURCE_DIR);
  EXPECT_EQ(f.exit_code, 0) << f.output;
  EXPECT_NE(f.output.find("on 3 of 3 node(s)"), std::string::npos) << f.output;
  EXPECT_NE(f.output.find("Once upon a time"), std::string::npos) << f.output;
  EXPECT_NE(f.output.find("stopped all nodes"), std::string::npos) << f.output;
  ASSERT_GT(f.pid, 0);
  EXPECT_TRUE(leftover_nodes(f.pid).empty());
}

TEST(DemoCommand, WritesASyntheticModelWhenNoModelIsFound) {
  // A copy of the binary in a folder with no ../shared, and HERD_MODELS pointing nowhere.
  const fs::path dir = temp_dir("demo-synthetic");
  const fs::path binary = dir / "bin" / "herd";
  fs::create_directories(binary.parent_path());
  fs::copy_file(herd_binary(), binary);
  Finished f =
      run_herd(binary, "demo -n 8 --nodes 2", dir, "HERD_MODELS=" + (dir / "nowhere").string());
  EXPECT_EQ(f.exit_code, 0) << f.output;
  EXPECT_NE(f.output.find("writing a synthetic model"), std::string::npos) << f.output;
  EXPECT_NE(f.output.find("on 2 of 2 node(s)"), std::string::npos) << f.output;
  EXPECT_NE(f.output.find("stopped all nodes"), std::string::npos) << f.output;
  ASSERT_GT(f.pid, 0);
  EXPECT_TRUE(leftover_nodes(f.pid).empty());
  // Its temporary folder (the synthetic model, logs, shards) is gone too.
  const std::string prefix = "herd-local-" + std::to_string(f.pid) + "-";
  for (const auto& entry : fs::directory_iterator(fs::temp_directory_path()))
    EXPECT_NE(entry.path().filename().string().rfind(prefix, 0), 0u) << entry.path();
}

TEST(BenchCommand, JsonHasEveryTrackedKeyAndTheRatiosItPrints) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  Finished f =
      run_herd(herd_binary(), "bench -m " + model.string() + " -p 32 -n 4 -r 1 -t 1 --json",
               HERD_SOURCE_DIR);
  ASSERT_EQ(f.exit_code, 0) << f.output;
  const std::vector<json> rows = json_lines(f.output);
  ASSERT_EQ(rows.size(), 1u) << f.output;
  const json& r = rows[0];
  for (const char* key : {"model", "type", "threads", "pp_tokens_per_s", "tg_tokens_per_s",
                          "tg_gbs", "measured_gbs", "tg_bandwidth_pct", "pp_gflops",
                          "int8_peak_gops", "pp_peak_pct", "rss_mib", "weights_mib", "kv_mib"}) {
    EXPECT_TRUE(r.contains(key)) << key << " missing from " << r.dump();
  }
  EXPECT_EQ(r["threads"], 1);
  EXPECT_GT(r["measured_gbs"].get<double>(), 0);
  EXPECT_NEAR(r["tg_bandwidth_pct"].get<double>(),
              100 * r["tg_gbs"].get<double>() / r["measured_gbs"].get<double>(), 1e-6);
  // The peak is measured wherever the kernels have an int8 dot-product loop (x86 here); the
  // percentage is then the prompt rate's arithmetic over it.
  if (r["int8_peak_gops"].get<double>() > 0) {
    EXPECT_NEAR(r["pp_peak_pct"].get<double>(),
                100 * r["pp_gflops"].get<double>() / r["int8_peak_gops"].get<double>(), 1e-6);
  } else {
    EXPECT_EQ(r["pp_peak_pct"].get<double>(), 0);
  }
}

TEST(BenchCommand, NodesComparesOneNodeWithAClusterMeasuredThroughTheApi) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  Finished f = run_herd(herd_binary(),
                        "bench -m " + model.string() + " -p 8 -n 8 -r 1 -t 1 --nodes 2 --json",
                        HERD_SOURCE_DIR);
  ASSERT_EQ(f.exit_code, 0) << f.output;
  const std::vector<json> rows = json_lines(f.output);
  ASSERT_EQ(rows.size(), 2u) << f.output;
  EXPECT_EQ(rows[0]["nodes"], 1);
  EXPECT_EQ(rows[0]["stages"], 1);
  EXPECT_EQ(rows[1]["nodes"], 2);
  EXPECT_EQ(rows[1]["stages"], 2) << "the cluster must split the model over both nodes";
  for (const auto& r : rows) {
    EXPECT_GT(r["pp_tokens_per_s"].get<double>(), 0) << r.dump();
    EXPECT_GT(r["tg_tokens_per_s"].get<double>(), 0) << r.dump();
  }
  EXPECT_DOUBLE_EQ(rows[1]["tg_ratio"].get<double>(), rows[1]["tg_tokens_per_s"].get<double>() /
                                                          rows[0]["tg_tokens_per_s"].get<double>());
  EXPECT_EQ(rows[0]["parallel_mode"], "single");
  EXPECT_EQ(rows[1]["parallel_mode"], "pipeline");
  ASSERT_GT(f.pid, 0);
  EXPECT_TRUE(leftover_nodes(f.pid).empty());
}

TEST(BenchCommand, TensorParallelNodesAreComparedWithOneNode) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  Finished f = run_herd(herd_binary(),
                        "bench -m " + model.string() +
                            " -p 8 -n 8 -r 1 -t 1 --nodes 2,3 --node-threads 1 --parallel-mode "
                            "tensor --json",
                        HERD_SOURCE_DIR);
  ASSERT_EQ(f.exit_code, 0) << f.output;
  const std::vector<json> rows = json_lines(f.output);
  ASSERT_EQ(rows.size(), 3u) << f.output;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i]["parallel_mode"], "tensor") << rows[i].dump();
    EXPECT_EQ(rows[i]["stages"], rows[i]["nodes"]) << "every node a rank of the group";
    EXPECT_GT(rows[i]["tg_tokens_per_s"].get<double>(), 0) << rows[i].dump();
    EXPECT_DOUBLE_EQ(rows[i]["pp_ratio"].get<double>(),
                     rows[i]["pp_tokens_per_s"].get<double>() /
                         rows[0]["pp_tokens_per_s"].get<double>());
  }
  ASSERT_GT(f.pid, 0);
  EXPECT_TRUE(leftover_nodes(f.pid).empty());
}

TEST(BenchCommand, ConcurrencyMeasuresStreamsTogetherOnOneNodeAndAPipeline) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  Finished f = run_herd(herd_binary(),
                        "bench -m " + model.string() +
                            " -p 8 -n 24 -r 1 -t 1 --nodes 2 --concurrency 1,3 --long-prompt 40 --json",
                        HERD_SOURCE_DIR);
  ASSERT_EQ(f.exit_code, 0) << f.output;
  const std::vector<json> rows = json_lines(f.output);
  ASSERT_EQ(rows.size(), 4u) << f.output;  // (1 node, 2 nodes) x (1, 3 streams)
  for (const auto& r : rows) {
    for (const char* key : {"concurrency", "nodes", "aggregate_tg_tokens_per_s", "ratio_vs_1",
                            "ttft_ms_p50", "itl_ms_p50", "itl_ms_p99", "long_prompt_ttft_ms",
                            "long_prompt_identical_runs"})
      EXPECT_TRUE(r.contains(key)) << key << " missing from " << r.dump();
    EXPECT_GT(r["aggregate_tg_tokens_per_s"].get<double>(), 0) << r.dump();
    EXPECT_GT(r["ttft_ms_p50"].get<double>(), 0) << r.dump();
    EXPECT_GE(r["itl_ms_p99"].get<double>(), r["itl_ms_p50"].get<double>()) << r.dump();
    if (r["concurrency"] == 1) {
      EXPECT_DOUBLE_EQ(r["ratio_vs_1"].get<double>(), 1.0);
    }
  }
  EXPECT_EQ(rows[0]["nodes"], 1);
  EXPECT_EQ(rows[3]["nodes"], 2);
  EXPECT_EQ(rows[3]["concurrency"], 3);
  EXPECT_DOUBLE_EQ(rows[3]["ratio_vs_1"].get<double>(),
                   rows[3]["aggregate_tg_tokens_per_s"].get<double>() /
                       rows[2]["aggregate_tg_tokens_per_s"].get<double>());
  ASSERT_GT(f.pid, 0);
  EXPECT_TRUE(leftover_nodes(f.pid).empty());
}

}  // namespace
}  // namespace herd::testing
