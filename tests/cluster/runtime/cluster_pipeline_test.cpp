// The networked pipeline against the local one: a model split into 2 and 3 stages (threads of
// this process, each with its own transport) gives the same logits and greedy tokens as
// engine::LocalPipeline; truncate reaches every stage; a node that dies or goes silent is an
// error naming it, within a bounded time.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cluster/runtime/stage_protocol.h"
#include "engine/local_pipeline.h"
#include "gguf/reader.h"
#include "model/synthetic_model.h"
#include "cluster/runtime/stage_chain_harness.h"
#include "support/test_data.h"
#include "util/error.h"

namespace herd::cluster {
namespace {

using namespace std::chrono_literals;
using testing::StageChain;
using testing::TransportKind;

// The 32-token input of ../shared/golden (README.md).
const std::vector<std::int32_t>& kInput = herd::testing::kGoldenInput;
constexpr int kCtx = 96;
constexpr int kGreedy = 32;

struct PipelineRun {
  std::vector<float> prompt_logits;     // [32, n_vocab]
  std::vector<std::int32_t> greedy;     // kGreedy tokens
  std::vector<float> last_step_logits;  // [n_vocab] of the last decode step
  std::vector<float> refill_logits;     // [16, n_vocab]: positions 16..31 again after truncate(16)
};

int argmax(const std::vector<float>& x, std::size_t offset, int n) {
  return static_cast<int>(std::max_element(x.begin() + offset, x.begin() + offset + n) -
                          (x.begin() + offset));
}

PipelineRun run(engine::Pipeline& p, const std::vector<std::int32_t>& input) {
  PipelineRun r;
  const int n_vocab = p.n_vocab();
  p.forward(input, 0, true, r.prompt_logits);
  std::int32_t next = argmax(r.prompt_logits, (input.size() - 1) * n_vocab, n_vocab);
  std::vector<float> step;
  for (int i = 0; i < kGreedy; ++i) {
    r.greedy.push_back(next);
    const std::int32_t token = next;
    p.forward(std::span(&token, 1), static_cast<std::int32_t>(input.size()) + i, false, step);
    next = argmax(step, 0, n_vocab);
  }
  r.last_step_logits = step;
  p.truncate(16);
  p.forward(std::span(input).subspan(16), 16, true, r.refill_logits);
  return r;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

void expect_same(const PipelineRun& local, const PipelineRun& cluster, int n_vocab) {
  ASSERT_EQ(cluster.prompt_logits.size(), local.prompt_logits.size());
  // Same kernels on the same inputs in the same order: the split must not change one bit.
  EXPECT_EQ(max_abs_diff(local.prompt_logits, cluster.prompt_logits), 0.0);
  EXPECT_EQ(cluster.greedy, local.greedy);
  EXPECT_EQ(max_abs_diff(local.last_step_logits, cluster.last_step_logits), 0.0);
  // After truncate(16), rows 16..31 come out as in the first pass.
  const std::vector<float> tail(local.prompt_logits.begin() + 16 * n_vocab,
                                local.prompt_logits.end());
  ASSERT_EQ(cluster.refill_logits.size(), tail.size());
  EXPECT_EQ(max_abs_diff(tail, cluster.refill_logits), 0.0);
}

PipelineRun run_local(const std::shared_ptr<const gguf::File>& file) {
  ThreadPool pool(1);
  engine::LocalPipeline local(model::Model::load(file), kCtx, pool);
  return run(local, kInput);
}

void check_splits(const std::shared_ptr<const gguf::File>& file, TransportKind kind) {
  const PipelineRun local = run_local(file);
  const auto whole = model::Model::load(file);
  const int n_layer = whole->n_layer();
  const int n_vocab = whole->n_vocab();
  // Two stages, and three (the coordinator keeps one layer, the last node one).
  const std::vector<std::vector<int>> splits = {{n_layer / 2}, {1, n_layer - 1}};
  for (const auto& cuts : splits) {
    SCOPED_TRACE(::testing::Message() << "cuts at " << cuts[0] << (cuts.size() > 1 ? "," : "")
                                      << (cuts.size() > 1 ? std::to_string(cuts[1]) : ""));
    StageChain chain(file, cuts, kCtx, kind);
    expect_same(local, run(chain.pipeline(), kInput), n_vocab);
    chain.pipeline().shutdown();
  }
}

std::shared_ptr<const gguf::File> synthetic_file() {
  static const auto path = [] {
    auto p = herd::testing::temp_dir("cluster_pipeline") / "synthetic.gguf";
    model::SyntheticSpec spec;
    spec.n_embd = 64;
    spec.n_layer = 4;
    spec.n_head = 4;
    spec.n_kv_head = 2;
    spec.n_ff = 128;
    spec.n_ctx = 256;
    model::write_synthetic_model(spec, p.string());
    return p;
  }();
  return std::make_shared<const gguf::File>(gguf::File::open(path.string()));
}

std::vector<std::int32_t> synthetic_input() {
  std::vector<std::int32_t> input;
  for (std::int32_t t : kInput) input.push_back(t % 259);  // the built-in byte vocabulary
  return input;
}

TEST(ClusterPipeline, SyntheticModelMatchesLocalOverLoopbackAndUcx) {
  const auto file = synthetic_file();
  ThreadPool pool(1);
  engine::LocalPipeline local_pipeline(model::Model::load(file), kCtx, pool);
  const PipelineRun local = run(local_pipeline, synthetic_input());
  for (auto kind : {TransportKind::kLoopback, TransportKind::kUcx}) {
    StageChain chain(file, {1, 3}, kCtx, kind);
    expect_same(local, run(chain.pipeline(), synthetic_input()), local_pipeline.n_vocab());
  }
}

TEST(ClusterPipeline, Stories260KSplitMatchesLocal) {
  HERD_REQUIRE_SHARED(path, "models/stories260K.gguf");
  check_splits(std::make_shared<const gguf::File>(gguf::File::open(path.string())),
               TransportKind::kUcx);
}

TEST(ClusterPipeline, Qwen2SplitMatchesLocal) {
  HERD_REQUIRE_SHARED(path, "golden/qwen2-f16.gguf");
  check_splits(std::make_shared<const gguf::File>(gguf::File::open(path.string())),
               TransportKind::kUcx);
}

// Four sequences in a three-stage chain, with one batch per stage in flight (submit, submit,
// submit, then collect): every batch's logits equal a local pipeline's running the same batches
// one at a time, and a prefix copied between sequences is copied on every stage.
TEST(ClusterPipeline, SequencesInFlightMatchLocal) {
  HERD_REQUIRE_SHARED(path, "models/stories260K.gguf");
  const auto file = std::make_shared<const gguf::File>(gguf::File::open(path.string()));
  ThreadPool pool(1);
  engine::LocalPipeline local(model::Model::load(file), kCtx, pool, 4);
  const int n_layer = model::Model::load(file)->n_layer();
  StageChain chain(file, {1, n_layer - 1}, kCtx, TransportKind::kUcx, {}, 4);
  ClusterPipeline& remote = chain.pipeline();
  ASSERT_EQ(remote.max_in_flight(), 3);
  ASSERT_EQ(remote.n_seqs(), 4);

  // Batch i: a prompt for sequence i (lengths 32, 9, 20) ...
  std::vector<engine::Batch> prompts(3);
  const std::size_t lengths[] = {32, 9, 20};
  for (int i = 0; i < 3; ++i) {
    prompts[i].add(i, 0, std::span(kInput).first(lengths[i]), true);
  }
  std::vector<std::vector<float>> want(3), got(3);
  for (int i = 0; i < 3; ++i) local.run(prompts[i], want[i]);
  for (int i = 0; i < 3; ++i) remote.submit(prompts[i]);
  EXPECT_EQ(remote.in_flight(), 3);
  for (int i = 0; i < 3; ++i) remote.collect(got[i]);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(max_abs_diff(want[i], got[i]), 0.0) << "prompt " << i;

  // ... then sequence 3 copies sequence 0's first 24 positions, and decode steps of all four
  // run two batches at a time.
  local.copy_prefix(0, 3, 24);
  remote.copy_prefix(0, 3, 24);
  std::int32_t pos[] = {32, 9, 20, 24};
  for (int step = 0; step < 6; ++step) {
    engine::Batch a, b;
    const std::int32_t t0 = 300 + step, t1 = 310 + step;
    a.add(0, pos[0], std::span(&t0, 1), true);
    a.add(2, pos[2], std::span(&t0, 1), true);
    b.add(1, pos[1], std::span(&t1, 1), true);
    b.add(3, pos[3], std::span(&t1, 1), true);
    std::vector<float> la, lb, ra, rb;
    local.run(a, la);
    local.run(b, lb);
    remote.submit(a);
    remote.submit(b);
    remote.collect(ra);
    remote.collect(rb);
    EXPECT_EQ(max_abs_diff(la, ra), 0.0) << "step " << step;
    EXPECT_EQ(max_abs_diff(lb, rb), 0.0) << "step " << step;
    for (auto& p : pos) ++p;
  }
  // A forgotten sequence starts over from position 0 (a new request in its slot), as locally;
  // a position past its end is refused.
  local.forget(1, 0);
  remote.forget(1, 0);
  engine::Batch again;
  again.add(1, 0, std::span(kInput).first(12), true);
  std::vector<float> lw, rw;
  local.run(again, lw);
  remote.run(again, rw);
  EXPECT_EQ(max_abs_diff(lw, rw), 0.0);
  engine::Batch gap;
  const std::int32_t t = 5;
  gap.add(1, 20, std::span(&t, 1), true);
  EXPECT_THROW(remote.run(gap, rw), InvalidArgument);
  remote.shutdown();
}

void expect_error_naming(const std::function<void()>& call, const std::vector<std::string>& words) {
  try {
    call();
    FAIL() << "no error";
  } catch (const Error& e) {
    for (const auto& w : words) {
      EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << e.what();
    }
  }
}

class ClusterPipelineFailure : public ::testing::TestWithParam<TransportKind> {};

TEST_P(ClusterPipelineFailure, CrashedNodeIsNamedWithTheToken) {
  ClusterPipelineOptions options;
  options.reply_timeout = 20s;  // a crash is seen from the connection, long before this
  StageChain chain(synthetic_file(), {1, 2}, kCtx, GetParam(), options);
  std::vector<float> logits;
  const auto input = synthetic_input();
  chain.pipeline().forward(input, 0, false, logits);
  chain.halt(1, /*crash=*/true);
  const std::int32_t token = 5;
  const auto start = std::chrono::steady_clock::now();
  expect_error_naming([&] { chain.pipeline().forward(std::span(&token, 1), 32, false, logits); },
                      {"node 'c'", "during token 32"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, 15s);
}

TEST_P(ClusterPipelineFailure, SilentNodeIsNamedAfterTheReplyTimeout) {
  ClusterPipelineOptions options;
  options.reply_timeout = 300ms;
  options.probe_timeout = 200ms;
  StageChain chain(synthetic_file(), {1, 2}, kCtx, GetParam(), options);
  std::vector<float> logits;
  chain.pipeline().forward(synthetic_input(), 0, false, logits);
  chain.halt(1, /*crash=*/false);  // alive, connected, but no longer serving
  const std::int32_t token = 5;
  expect_error_naming([&] { chain.pipeline().forward(std::span(&token, 1), 32, false, logits); },
                      {"node 'c'", "stopped answering during token 32", "ping"});
}

INSTANTIATE_TEST_SUITE_P(Transport, ClusterPipelineFailure,
                         ::testing::Values(TransportKind::kLoopback, TransportKind::kUcx),
                         [](const auto& info) {
                           return info.param == TransportKind::kUcx ? "ucx" : "loopback";
                         });

}  // namespace
}  // namespace herd::cluster
