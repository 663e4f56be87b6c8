// herd bench: prompt processing and generation speed, with generation's weight-read bandwidth
// as a share of this machine's read bandwidth, and prompt processing's arithmetic as a share of
// its int8 multiply-add peak, both measured in the same run.
// herd bench --nodes N: the same model served by one `herd serve` process and by a local cluster
// of N, both measured through the coordinator's API (bench_served.h), side by side.
// herd bench --concurrency 1,4,8: that many simultaneous streamed requests through the API of one
// node (and of each --nodes cluster), aggregate decode speed against one stream
// (bench_concurrency.h).
#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/bench_concurrency.h"
#include "cli/bench_served.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/local_cluster.h"
#include "engine/local_pipeline.h"
#include "kernels/compute_peak.h"
#include "util/error.h"
#include "util/memory_bandwidth.h"
#include "util/process_memory.h"
#include "util/thread_pool.h"

namespace herd::cli {
namespace {

struct BenchOptions {
  std::vector<std::string> models;
  int n_prompt = 512;
  int n_gen = 128;
  int depth = 0;  // also time generation after this many cached positions (long context)
  int reps = 3;
  std::vector<int> threads;
  bool json = false;
  std::vector<int> nodes;  // non-empty: compare one node with clusters of these sizes
  int node_threads = 0;    // per cluster node; 0: the single node's threads / N
  std::vector<int> concurrency;  // non-empty: simultaneous requests through the API
  int long_prompt = 0;           // with concurrency: a long request arriving mid-decode
  int ctx = 0;                   // per sequence for served runs; 0: what the runs need
  std::string parallel_mode = "pipeline";  // how the --nodes clusters share the model
};

struct BenchResult {
  std::string model;
  std::string type;
  int threads = 0;
  double pp_tps = 0, tg_tps = 0;
  double tg_depth_tps = 0;  // generation after `depth` cached positions (0 when not asked)
  double tg_gbs = 0, measured_gbs = 0, pct = 0;
  double pp_gflops = 0;
  double peak_gops = 0;  // measured int8 multiply-add peak of these threads (0: none)
  std::string peak_instruction;
  double params_b = 0;
  double pp_peak_pct() const { return peak_gops > 0 ? 100.0 * pp_gflops / peak_gops : 0; }
  // Memory once the runs are done: resident set against the weights plus the KV cache.
  double rss_mib = 0, weights_mib = 0, kv_mib = 0;
  double rss_ratio() const {
    return weights_mib + kv_mib > 0 ? rss_mib / (weights_mib + kv_mib) : 0;
  }
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The type holding most of the weight bytes, as llama-bench labels a model.
std::string dominant_type(const gguf::File& file) {
  std::map<std::string, std::uint64_t> bytes;
  for (const auto& t : file.tensors()) bytes[std::string(tensor::type_name(t.type))] += t.n_bytes;
  auto it = std::max_element(bytes.begin(), bytes.end(),
                             [](auto& a, auto& b) { return a.second < b.second; });
  return it == bytes.end() ? "?" : it->first;
}

// Multiply-adds x 2 per prompt token: every weight of the layers once (for MoE layers only the
// experts a token is routed to; attention's share is small at 512 positions). The embedding is
// a lookup and the output head runs for the last token only, so neither counts.
double prefill_flops_per_token(const model::Model& model) {
  const auto& hp = model.hparams();
  double flops = 0;
  for (const auto& t : model.file().tensors()) {
    if (!t.name.starts_with("blk.")) continue;
    double n = static_cast<double>(t.n_elements);
    if (t.name.find("_exps") != std::string::npos && hp.n_expert > 0)
      n *= static_cast<double>(hp.n_expert_used) / hp.n_expert;
    flops += 2.0 * n;
  }
  return flops;
}

// Generation speed with `depth` positions already in the KV cache: attention then reads the
// whole cache for every token. The context is filled once (untimed), then each run decodes n_gen
// tokens from there and is rolled back.
double bench_depth(engine::LocalPipeline& pipeline, int n_vocab, const BenchOptions& o) {
  std::vector<float> logits;
  auto context = bench_tokens(o.depth, n_vocab, 777);
  std::fprintf(stderr, "bench: filling %d positions of context...\n", o.depth);
  pipeline.truncate(0);
  pipeline.forward(context, 0, false, logits);
  std::vector<double> rates;
  for (int rep = 0; rep < o.reps; ++rep) {
    pipeline.truncate(o.depth);
    std::int32_t token = context.back();
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < o.n_gen; ++i) {
      pipeline.forward(std::span(&token, 1), o.depth + i, false, logits);
      token = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) -
                                        logits.begin());
    }
    rates.push_back(o.n_gen / seconds_since(t0));
    std::fprintf(stderr, "bench: run %d/%d: tg%d at depth %d: %.2f t/s\n", rep + 1, o.reps, o.n_gen,
                 o.depth, rates.back());
  }
  return median(rates);
}

BenchResult bench_one(const std::string& path, int threads, const BenchOptions& o) {
  auto model = load_model(path);
  ThreadPool pool(threads);
  BenchResult r;
  r.model = model->hparams().name.empty() ? path : model->hparams().name;
  r.type = dominant_type(model->file());
  r.threads = threads;
  std::int64_t params = 0;
  for (const auto& t : model->file().tensors()) params += t.n_elements;
  r.params_b = params / 1e9;

  std::fprintf(stderr, "bench: %s, %d thread(s): measuring memory bandwidth...\n", r.model.c_str(),
               threads);
  // Measured again before every generation run and reported as the median, so a noisy moment
  // on a shared machine moves the numerator and the denominator alike.
  std::vector<double> bandwidth = {measure_memory_bandwidth(pool).read_gb_per_s};
  // Likewise the int8 peak before every prompt run.
  std::fprintf(stderr, "bench: measuring the int8 multiply-add peak...\n");
  const kernels::ComputePeak first_peak = kernels::measure_int8_peak(pool);
  std::vector<double> peaks = {first_peak.int8_gops};

  const int n_ctx = std::max(o.n_prompt, o.depth) + o.n_gen + 1;
  engine::LocalPipeline pipeline(model, n_ctx, pool);
  std::vector<float> logits;
  auto prompt = bench_tokens(o.n_prompt, model->n_vocab(), 12345);
  // Warm-up: page the mapped weights in so the first timed run does not measure the disk.
  pipeline.forward(std::span(prompt).first(std::min<std::size_t>(prompt.size(), 16)), 0, false,
                   logits);

  std::vector<double> pp, tg;
  for (int rep = 0; rep < o.reps; ++rep) {
    std::fprintf(stderr, "bench: run %d/%d: pp%d", rep + 1, o.reps, o.n_prompt);
    pipeline.truncate(0);
    if (o.n_prompt > 0 && first_peak.int8_gops > 0)
      peaks.push_back(kernels::measure_int8_peak(pool, 0.1).int8_gops);
    auto t0 = std::chrono::steady_clock::now();
    if (o.n_prompt > 0) pipeline.forward(prompt, 0, false, logits);
    double pp_s = seconds_since(t0);
    if (o.n_prompt > 0) pp.push_back(o.n_prompt / pp_s);
    std::fprintf(stderr, " %.1f t/s, tg%d", o.n_prompt ? o.n_prompt / pp_s : 0.0, o.n_gen);
    pipeline.truncate(0);
    bandwidth.push_back(measure_memory_bandwidth(pool, std::size_t{1} << 30, 3).read_gb_per_s);
    std::int32_t token = prompt.empty() ? 1 : prompt[0];
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < o.n_gen; ++i) {
      pipeline.forward(std::span(&token, 1), i, false, logits);
      token = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) -
                                        logits.begin());
    }
    double tg_s = seconds_since(t0);
    if (o.n_gen > 0) tg.push_back(o.n_gen / tg_s);
    std::fprintf(stderr, " %.2f t/s\n", o.n_gen ? o.n_gen / tg_s : 0.0);
  }
  if (!pp.empty()) r.pp_tps = median(pp);
  if (!tg.empty()) r.tg_tps = median(tg);
  if (o.depth > 0 && o.n_gen > 0) r.tg_depth_tps = bench_depth(pipeline, model->n_vocab(), o);
  constexpr double kMiB = 1024.0 * 1024.0;
  r.rss_mib = static_cast<double>(resident_bytes()) / kMiB;
  std::size_t weight_bytes = 0;
  for (const auto& t : model->file().tensors()) weight_bytes += t.n_bytes;
  r.weights_mib = static_cast<double>(weight_bytes) / kMiB;
  r.kv_mib =
      static_cast<double>(model->kv_bytes_per_token_per_layer()) * n_ctx * model->n_layer() / kMiB;
  r.measured_gbs = median(bandwidth);
  // Bytes streamed per generated token: every layer's weights and the output head (the
  // embedding contributes one row, negligible).
  double bytes_per_token = static_cast<double>(model->head_bytes());
  for (int il = 0; il < model->n_layer(); ++il) bytes_per_token += model->layer_bytes(il);
  r.tg_gbs = bytes_per_token * r.tg_tps / 1e9;
  r.pct = r.measured_gbs > 0 ? 100.0 * r.tg_gbs / r.measured_gbs : 0;
  r.pp_gflops = prefill_flops_per_token(*model) * r.pp_tps / 1e9;
  r.peak_gops = median(peaks);
  r.peak_instruction = first_peak.instruction;
  return r;
}

struct ServedRow {
  int nodes = 1;
  int threads_per_node = 0;
  int stages = 0;
  ServedSpeed speed;
};

// The local cluster a served run measures: `nodes` processes of `threads` each. A pipeline is
// given just enough memory per node that every node must hold a part; a tensor-parallel group
// holds a share of every layer anyway.
LocalClusterOptions bench_cluster(const BenchOptions& o, const model::Model& model, int nodes,
                                  int threads, int n_ctx) {
  LocalClusterOptions co;
  co.nodes = nodes;
  co.threads_per_node = threads;
  co.n_ctx = n_ctx;
  if (nodes > 1) {
    co.parallel_mode = o.parallel_mode;
    if (o.parallel_mode != "tensor") co.memory_limit = split_memory_limit(model, n_ctx, nodes);
  }
  return co;
}

ServedRow serve_and_measure(const std::string& path, const LocalClusterOptions& co,
                            const ServedBenchParams& params) {
  const int nodes = co.nodes, threads = co.threads_per_node;
  LocalCluster cluster(co);
  std::fprintf(stderr, "bench: starting %d node(s), %d thread(s) each...\n", nodes, threads);
  ServedRow row{nodes, threads, 0, {}};
  try {
    cluster.start(path);
    cluster.wait_ready(600);
    httplib::Client client("127.0.0.1", cluster.api_port(0));
    auto view = client.Get("/v1/cluster");
    if (view && view->status == 200) {
      auto j = nlohmann::json::parse(view->body, nullptr, false);
      if (!j.is_discarded() && j.contains("placement"))
        row.stages =
            static_cast<int>(j["placement"].value("stages", nlohmann::json::array()).size());
    }
    row.speed = measure_served(cluster.api_port(0), params);
  } catch (...) {
    cluster.keep_files();
    std::fprintf(stderr, "bench: the node logs are kept in %s\n", cluster.dir().c_str());
    throw;
  }
  return row;
}

int run_bench_nodes(const BenchOptions& o) {
  const int threads = o.threads.front();
  const int n_ctx = o.n_prompt + o.n_gen + 16;
  const ServedBenchParams params{o.n_prompt, o.n_gen, o.reps, 0};
  for (const auto& path : o.models) {
    auto model = load_model(path);
    ServedBenchParams p = params;
    p.n_vocab = model->n_vocab();
    const std::string name = model->hparams().name.empty() ? path : model->hparams().name;
    const std::string type = dominant_type(model->file());
    std::vector<ServedRow> rows = {
        serve_and_measure(path, bench_cluster(o, *model, 1, threads, n_ctx), p)};
    for (int n : o.nodes) {
      if (n < 2) continue;
      const int per_node = o.node_threads > 0 ? o.node_threads : std::max(1, threads / n);
      rows.push_back(serve_and_measure(path, bench_cluster(o, *model, n, per_node, n_ctx), p));
    }
    const ServedSpeed& one = rows.front().speed;
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    if (o.json) {
      for (const auto& r : rows) {
        nlohmann::json j = {{"model", name},
                            {"type", type},
                            {"nodes", r.nodes},
                            {"stages", r.stages},
                            {"parallel_mode", r.nodes > 1 ? o.parallel_mode : "single"},
                            {"threads_per_node", r.threads_per_node},
                            {"n_prompt", o.n_prompt},
                            {"n_gen", o.n_gen},
                            {"reps", o.reps},
                            {"pp_tokens_per_s", r.speed.pp_tps},
                            {"tg_tokens_per_s", r.speed.tg_tps},
                            {"pp_ratio", ratio(r.speed.pp_tps, one.pp_tps)},
                            {"tg_ratio", ratio(r.speed.tg_tps, one.tg_tps)},
                            {"measured_via", "api"},
                            {"machine_cores", ThreadPool::default_thread_count()}};
        fmt::print("{}\n", j.dump());
      }
      continue;
    }
    fmt::print("| {:<24} | {:<5} | {:>5} | {:<8} | {:>6} | {:>12} | {:>10} | {:>10} | {:>8} | {:>8} |\n",
               "model", "type", "nodes", "mode", "stages", "threads/node",
               fmt::format("pp{} t/s", o.n_prompt), fmt::format("tg{} t/s", o.n_gen), "pp ratio",
               "tg ratio");
    fmt::print("|{:-<26}|{:-<7}|{:-<7}|{:-<10}|{:-<8}|{:-<14}|{:-<12}|{:-<12}|{:-<10}|{:-<10}|\n",
               "", "", "", "", "", "", "", "", "", "");
    for (const auto& r : rows)
      fmt::print(
          "| {:<24} | {:<5} | {:>5} | {:<8} | {:>6} | {:>12} | {:>10.1f} | {:>10.2f} | {:>7.2f}x | "
          "{:>7.2f}x |\n",
          name.substr(0, 24), type, r.nodes, r.nodes > 1 ? o.parallel_mode : "single", r.stages,
          r.threads_per_node, r.speed.pp_tps,
          r.speed.tg_tps, ratio(r.speed.pp_tps, one.pp_tps), ratio(r.speed.tg_tps, one.tg_tps));
  }
  if (!o.json) {
    const int cores = ThreadPool::default_thread_count();
    fmt::print(
        "(medians of {} runs, measured through the coordinator's API: the prefill and decode rates "
        "of the generation itself; decode = end-to-end time per token after the first, every "
        "stage and hop included)\n",
        o.reps);
    fmt::print(
        "note: all nodes run on this one machine ({} cores) and share its cores and memory "
        "bandwidth; {}. Across machines each node has its own.\n",
        cores,
        o.node_threads > 0
            ? fmt::format("each cluster node has --threads {} (for one stream only one stage "
                          "computes at a time; the others wait)",
                          o.node_threads)
            : fmt::format("each cluster node has --threads = {} / nodes (at least 1), so that "
                          "together they use the single node's {} thread(s)",
                          o.threads.front(), o.threads.front()));
  }
  return 0;
}

struct ConcurrencyRow {
  int nodes = 1;
  int threads_per_node = 0;
  int concurrency = 1;
  ConcurrencyResult result;  // medians over the repetitions
  int runs = 0;
  int long_identical = 0;  // runs whose long answer was identical to it alone
};

// Every --concurrency level against one server (a local cluster of `nodes`).
std::vector<ConcurrencyRow> measure_levels(const std::string& path, LocalClusterOptions co,
                                           const BenchOptions& o, int n_vocab) {
  const int nodes = co.nodes, threads = co.threads_per_node;
  co.parallel = *std::max_element(o.concurrency.begin(), o.concurrency.end()) +
                (o.long_prompt > 0 ? 1 : 0);
  LocalCluster cluster(co);
  std::fprintf(stderr, "bench: starting %d node(s), %d thread(s) each, %d sequences at once...\n",
               nodes, threads, co.parallel);
  std::vector<ConcurrencyRow> rows;
  try {
    cluster.start(path);
    cluster.wait_ready(600);
    // Warm-up: the first pass faults the mapped weights in on every stage.
    ConcurrencyParams warm{1, 16, 4, n_vocab, 0, 999};
    measure_concurrency(cluster.api_port(0), warm);
    for (int c : o.concurrency) {
      std::vector<ConcurrencyResult> runs;
      for (int rep = 0; rep < o.reps; ++rep) {
        ConcurrencyParams p{c, o.n_prompt, o.n_gen, n_vocab, o.long_prompt,
                            static_cast<std::uint32_t>(100 * c + rep + 1)};
        runs.push_back(measure_concurrency(cluster.api_port(0), p));
        const ConcurrencyResult& r = runs.back();
        std::fprintf(stderr,
                     "bench: %d node(s), %d stream(s), run %d/%d: %.1f t/s together, TTFT p50 "
                     "%.0f ms, ITL p50 %.1f / p99 %.1f ms%s\n",
                     nodes, c, rep + 1, o.reps, r.aggregate_tg_tps, r.ttft_ms_p50, r.itl_ms_p50,
                     r.itl_ms_p99,
                     o.long_prompt > 0
                         ? fmt::format(", long prompt TTFT {:.0f} ms, answer {}", r.long_ttft_ms,
                                       r.long_matches_alone
                                           ? std::string("identical to it alone")
                                           : fmt::format("parts from it alone after {:.0f}% of "
                                                         "its text",
                                                         100 * r.long_same_prefix))
                               .c_str()
                         : "");
      }
      auto med = [&](auto field) {
        std::vector<double> v;
        for (const auto& r : runs) v.push_back(field(r));
        return quantile(v, 0.5);
      };
      ConcurrencyRow row{nodes, threads, c, {}};
      row.result.aggregate_tg_tps = med([](const auto& r) { return r.aggregate_tg_tps; });
      row.result.ttft_ms_p50 = med([](const auto& r) { return r.ttft_ms_p50; });
      row.result.itl_ms_p50 = med([](const auto& r) { return r.itl_ms_p50; });
      row.result.itl_ms_p99 = med([](const auto& r) { return r.itl_ms_p99; });
      row.result.long_ttft_ms = med([](const auto& r) { return r.long_ttft_ms; });
      row.result.completed = runs.back().completed;
      row.result.long_matches_alone =
          std::all_of(runs.begin(), runs.end(), [](const auto& r) { return r.long_matches_alone; });
      row.result.long_same_prefix = med([](const auto& r) { return r.long_same_prefix; });
      row.long_identical = static_cast<int>(std::count_if(
          runs.begin(), runs.end(), [](const auto& r) { return r.long_matches_alone; }));
      row.runs = static_cast<int>(runs.size());
      rows.push_back(row);
    }
  } catch (...) {
    cluster.keep_files();
    std::fprintf(stderr, "bench: the node logs are kept in %s\n", cluster.dir().c_str());
    throw;
  }
  return rows;
}

int run_bench_concurrency(const BenchOptions& o) {
  const int threads = o.threads.front();
  for (const auto& path : o.models) {
    auto model = load_model(path);
    const std::string name = model->hparams().name.empty() ? path : model->hparams().name;
    const std::string type = dominant_type(model->file());
    // Context per sequence: the longest prompt, its answer and a margin, unless -c says.
    const int n_ctx = o.ctx > 0 ? o.ctx : std::max(o.n_prompt, o.long_prompt) + o.n_gen + 32;
    std::vector<int> sizes = {1};
    for (int n : o.nodes)
      if (n >= 2) sizes.push_back(n);
    std::vector<ConcurrencyRow> rows;
    for (int n : sizes) {
      const int per_node =
          n == 1 ? threads : (o.node_threads > 0 ? o.node_threads : std::max(1, threads / n));
      for (auto& r : measure_levels(path, bench_cluster(o, *model, n, per_node, n_ctx), o,
                                    model->n_vocab()))
        rows.push_back(r);
    }
    // Each row against one stream on the same server (concurrency 1, same node count).
    auto one_stream = [&](int nodes) {
      for (const auto& r : rows)
        if (r.nodes == nodes && r.concurrency == 1) return r.result.aggregate_tg_tps;
      return 0.0;
    };
    if (o.json) {
      for (const auto& r : rows) {
        const double base = one_stream(r.nodes);
        nlohmann::json j = {{"model", name},
                            {"type", type},
                            {"concurrency", r.concurrency},
                            {"nodes", r.nodes},
                            {"threads_per_node", r.threads_per_node},
                            {"n_prompt", o.n_prompt},
                            {"n_gen", o.n_gen},
                            {"reps", o.reps},
                            {"aggregate_tg_tokens_per_s", r.result.aggregate_tg_tps},
                            {"ratio_vs_1", base > 0 ? r.result.aggregate_tg_tps / base : 0.0},
                            {"ttft_ms_p50", r.result.ttft_ms_p50},
                            {"itl_ms_p50", r.result.itl_ms_p50},
                            {"itl_ms_p99", r.result.itl_ms_p99},
                            {"measured_via", "api"}};
        if (o.long_prompt > 0) {
          j["long_prompt"] = o.long_prompt;
          j["long_prompt_ttft_ms"] = r.result.long_ttft_ms;
          j["long_prompt_identical_runs"] = r.long_identical;
          j["long_prompt_same_prefix"] = r.result.long_same_prefix;
        }
        fmt::print("{}\n", j.dump());
      }
      continue;
    }
    fmt::print("| {:<20} | {:<5} | {:>5} | {:>7} | {:>11} | {:>8} | {:>9} | {:>9} | {:>9} |\n",
               "model", "type", "nodes", "streams", "tg t/s all", "vs 1", "TTFT p50",
               "ITL p50", "ITL p99");
    fmt::print("|{:-<22}|{:-<7}|{:-<7}|{:-<9}|{:-<13}|{:-<10}|{:-<11}|{:-<11}|{:-<11}|\n", "", "",
               "", "", "", "", "", "", "");
    for (const auto& r : rows) {
      const double base = one_stream(r.nodes);
      // "-" without a one-stream run on the same server (no --concurrency 1).
      const std::string vs =
          base > 0 ? fmt::format("{:.2f}x", r.result.aggregate_tg_tps / base) : std::string("-");
      fmt::print(
          "| {:<20} | {:<5} | {:>5} | {:>7} | {:>11.1f} | {:>8} | {:>6.0f} ms | {:>6.1f} ms | "
          "{:>6.1f} ms |\n",
          name.substr(0, 20), type, r.nodes, r.concurrency, r.result.aggregate_tg_tps, vs,
          r.result.ttft_ms_p50, r.result.itl_ms_p50, r.result.itl_ms_p99);
    }
    if (o.long_prompt > 0) {
      for (const auto& r : rows)
        fmt::print("{} node(s), {} streams: a {}-token prompt arriving mid-decode: TTFT {:.0f} ms; "
                   "its greedy answer identical to the same request alone in {} of {} runs "
                   "(median share of the text in common from the start: {:.0f}%)\n",
                   r.nodes, r.concurrency, o.long_prompt, r.result.long_ttft_ms, r.long_identical,
                   r.runs, 100 * r.result.long_same_prefix);
    }
  }
  if (!o.json) {
    fmt::print(
        "(medians of {} runs through the API: each stream a different {}-token prompt and {} "
        "greedy tokens; 'tg t/s all' = the streams' tokens after their first over the time from "
        "the first first token to the last token; 'vs 1' against one stream on the same "
        "server)\n",
        o.reps, o.n_prompt, o.n_gen);
  }
  return 0;
}

int run_bench(BenchOptions o) {
  if (o.threads.empty()) o.threads = {ThreadPool::default_thread_count()};
  if (o.reps < 1) fail_argument("-r must be at least 1");
  if (o.n_prompt < 0 || o.n_gen < 0) fail_argument("-p and -n must not be negative");
  if (!o.concurrency.empty()) return run_bench_concurrency(o);
  if (!o.nodes.empty()) return run_bench_nodes(o);
  std::vector<BenchResult> results;
  for (const auto& path : o.models)
    for (int t : o.threads) results.push_back(bench_one(path, t, o));

  if (o.json) {
    for (const auto& r : results) {
      nlohmann::json j = {{"model", r.model},
                          {"type", r.type},
                          {"threads", r.threads},
                          {"n_prompt", o.n_prompt},
                          {"n_gen", o.n_gen},
                          {"reps", o.reps},
                          {"pp_tokens_per_s", r.pp_tps},
                          {"tg_tokens_per_s", r.tg_tps},
                          {"tg_gbs", r.tg_gbs},
                          {"measured_gbs", r.measured_gbs},
                          {"tg_bandwidth_pct", r.pct},
                          {"pp_gflops", r.pp_gflops},
                          {"int8_peak_gops", r.peak_gops},
                          {"pp_peak_pct", r.pp_peak_pct()},
                          {"params_b", r.params_b},
                          {"rss_mib", r.rss_mib},
                          {"weights_mib", r.weights_mib},
                          {"kv_mib", r.kv_mib},
                          {"rss_over_weights_and_kv", r.rss_ratio()}};
      if (o.depth > 0) {
        j["depth"] = o.depth;
        j["tg_depth_tokens_per_s"] = r.tg_depth_tps;
      }
      fmt::print("{}\n", j.dump());
    }
    return 0;
  }
  fmt::print(
      "| {:<28} | {:<5} | {:>7} | {:>10} | {:>10} | {:>8} | {:>11} | {:>6} | {:>10} | {:>10} | "
      "{:>6} |\n",
      "model", "type", "threads", fmt::format("pp{} t/s", o.n_prompt),
      fmt::format("tg{} t/s", o.n_gen), "tg GB/s", "measured GB/s", "% bw", "pp GFLOP/s",
      "int8 GOP/s", "% peak");
  fmt::print(
      "|{:-<30}|{:-<7}|{:-<9}|{:-<12}|{:-<12}|{:-<10}|{:-<13}|{:-<8}|{:-<12}|{:-<12}|{:-<8}|\n", "",
      "", "", "", "", "", "", "", "", "", "");
  for (const auto& r : results) {
    const std::string peak = r.peak_gops > 0 ? fmt::format("{:.0f}", r.peak_gops) : "n/a";
    const std::string pct = r.peak_gops > 0 ? fmt::format("{:.1f}%", r.pp_peak_pct()) : "n/a";
    fmt::print(
        "| {:<28} | {:<5} | {:>7} | {:>10.1f} | {:>10.2f} | {:>8.1f} | {:>13.1f} | {:>5.1f}% | "
        "{:>10.1f} | {:>10} | {:>6} |\n",
        r.model.substr(0, 28), r.type, r.threads, r.pp_tps, r.tg_tps, r.tg_gbs, r.measured_gbs,
        r.pct, r.pp_gflops, peak, pct);
  }
  fmt::print(
      "(medians of {} runs; % bw = generation's weight reads / read bandwidth measured in this "
      "run; % peak = prompt processing's multiply-adds / the int8 multiply-add peak of the same "
      "threads ({}), measured in this run)\n",
      o.reps, results.empty() ? "none" : results.front().peak_instruction);
  for (const auto& r : results) {
    fmt::print(
        "{} {} threads {}: resident {:.0f} MiB = {:.2f}x (weights {:.0f} MiB + KV cache {:.0f} "
        "MiB)\n",
        r.model.substr(0, 28), r.type, r.threads, r.rss_mib, r.rss_ratio(), r.weights_mib,
        r.kv_mib);
  }
  if (o.depth > 0) {
    for (const auto& r : results)
      fmt::print(
          "{} {} threads {}: tg{} at depth {}: {:.2f} t/s ({:.2f}x slower than from an "
          "empty context)\n",
          r.model.substr(0, 28), r.type, r.threads, o.n_gen, o.depth, r.tg_depth_tps,
          r.tg_depth_tps > 0 ? r.tg_tps / r.tg_depth_tps : 0.0);
  }
  return 0;
}

}  // namespace

CommandFn add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand("bench", "Measure prompt processing and generation speed");
  cmd->add_option("-m,--model", o->models, "GGUF model file(s)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("-p,--prompt", o->n_prompt, "Prompt tokens processed in one batch")
      ->capture_default_str();
  cmd->add_option("-n,--gen", o->n_gen, "Tokens generated one at a time")->capture_default_str();
  cmd->add_option("-d,--depth", o->depth,
                  "Also time generation with this many positions already in the context");
  cmd->add_option("-r,--reps", o->reps, "Repetitions (the median is reported)")
      ->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Thread counts to test, e.g. -t 1,2")->delimiter(',');
  cmd->add_flag("--json", o->json, "One JSON object per configuration, one per line");
  cmd->add_option("--nodes", o->nodes,
                  "Also serve the model on local clusters of these sizes, e.g. --nodes 2,3, and "
                  "compare with one node (all measured through the API)")
      ->delimiter(',')
      ->check(CLI::Range(1, 16));
  cmd->add_option("--parallel-mode", o->parallel_mode,
                  "How the --nodes clusters share the model: pipeline (layer ranges in turn) or "
                  "tensor (a share of every layer, all nodes at once)")
      ->check(CLI::IsMember({"pipeline", "tensor"}))
      ->capture_default_str();
  cmd->add_option("--node-threads", o->node_threads,
                  "Threads per cluster node (default: the single node's threads / nodes)");
  cmd->add_option("--concurrency", o->concurrency,
                  "Simultaneous streamed requests through the API, e.g. 1,4,8: aggregate decode "
                  "speed against one stream, TTFT and inter-token latency (with --nodes: also on "
                  "those clusters)")
      ->delimiter(',')
      ->check(CLI::Range(1, 256));
  cmd->add_option("--long-prompt", o->long_prompt,
                  "With --concurrency: one more request with a prompt this long arrives while "
                  "the streams decode; its answer is checked against the same request alone")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-c,--ctx", o->ctx,
                  "Context per sequence of the served runs (default: what the runs need)");
  return [o] { return run_bench(*o); };
}

}  // namespace herd::cli
