// Tensor-parallel groups over a transport: the coordinator's stage split over 2 and 3 ranks, and
// a hybrid (a pipeline of two groups of two), each rank a thread of this process with its own
// transport, slice and StageServer, against the whole model in one LocalPipeline. Also the
// all-reduce itself: sums, order, and a rank that falls silent.
//
// Tolerances as tests/engine/tensor_parallel_test.cpp: f32 gives the same greedy tokens and
// cosine >= 0.99999 per position (only the order in which partial sums are added differs).
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>

#include "cluster/runtime/cluster_pipeline.h"
#include "cluster/runtime/stage_server.h"
#include "cluster/runtime/transport_reducer.h"
#include "cluster/transport/transport_loopback.h"
#include "cluster/transport/ucx_transport.h"
#include "engine/local_pipeline.h"
#include "gguf/reader.h"
#include "model/model.h"
#include "support/logits.h"
#include "support/test_data.h"
#include "util/error.h"

namespace herd::cluster {
namespace {

using namespace std::chrono_literals;

enum class Kind { kLoopback, kUcx };

const std::vector<std::int32_t>& kInput = herd::testing::kGoldenInput;
constexpr int kCtx = 64;

// One group of the plan: its layers and its ranks' weights. Group 0 is the coordinator's.
struct GroupSpec {
  model::LayerRange range;
  std::vector<double> weights;
};

// Every rank but the coordinator: a thread serving a StageServer on its own transport.
class TensorCluster {
 public:
  TensorCluster(std::shared_ptr<const gguf::File> file, std::vector<GroupSpec> groups, Kind kind)
      : fabric_(std::make_shared<LoopbackFabric>()) {
    auto make = [&]() -> std::unique_ptr<Transport> {
      if (kind == Kind::kLoopback) return std::make_unique<LoopbackTransport>(fabric_);
      return std::make_unique<UcxTransport>();
    };
    coordinator_ = make();
    // ranks_[g][r]: rank r of group g (rank 0 of group 0 is the coordinator: null).
    std::vector<std::vector<Rank*>> ranks(groups.size());
    for (std::size_t g = 0; g < groups.size(); ++g) {
      for (std::size_t r = 0; r < groups[g].weights.size(); ++r) {
        if (g == 0 && r == 0) {
          ranks[g].push_back(nullptr);
          continue;
        }
        auto rank = std::make_unique<Rank>();
        rank->transport = make();
        rank->name = "g" + std::to_string(g) + "r" + std::to_string(r);
        ranks[g].push_back(rank.get());
        ranks_.push_back(std::move(rank));
      }
    }
    auto address = [&](std::size_t g, std::size_t r) {
      return g == 0 && r == 0 ? coordinator_->local_address()
                              : ranks[g][r]->transport->local_address();
    };
    auto share = [&](std::size_t g, std::size_t r) {
      return model::TensorShare{static_cast<int>(r), groups[g].weights};
    };
    std::vector<ChainNode> chain;
    for (std::size_t g = 0; g < groups.size(); ++g) {
      const int n = static_cast<int>(groups[g].weights.size());
      for (std::size_t r = 0; r < groups[g].weights.size(); ++r) {
        if (g == 0 && r == 0) continue;
        Rank& rank = *ranks[g][r];
        Transport& t = *rank.transport;
        StageLinks links;
        ReduceGroup reduce{static_cast<int>(r), {}, n};
        for (int q = 0; q < n; ++q) {  // every other rank of the group, in rank order
          if (q != static_cast<int>(r)) reduce.peers.push_back(t.connect(address(g, q), "rank"));
        }
        if (r == 0) {
          links.coordinator = t.connect(coordinator_->local_address(), "coordinator");
          if (g + 1 < groups.size()) links.next = t.connect(address(g + 1, 0), "next leader");
          for (int f = 1; f < n; ++f) links.followers.push_back(t.connect(address(g, f), "follower"));
          chain.push_back({rank.name, "in-process", coordinator_->connect(address(g, 0), rank.name)});
        } else {
          links.coordinator = t.connect(address(g, 0), "leader");
          links.follower = true;
        }
        if (n > 1) rank.reducer = std::make_unique<TransportReducer>(t, reduce, 10000ms);
        rank.pool = std::make_unique<ThreadPool>(1);
        rank.server = std::make_unique<StageServer>(
            model::Model::load(file, groups[g].range, share(g, r)), kCtx, *rank.pool, t, links,
            StageServerOptions{}, 1, rank.reducer.get());
        rank.thread = std::thread([&rank] { rank.server->serve(&rank.stop); });
      }
    }
    TensorGroup group;
    const int n0 = static_cast<int>(groups[0].weights.size());
    if (n0 > 1) {
      ReduceGroup reduce{0, {}, n0};
      for (int f = 1; f < n0; ++f) {
        const PeerId peer = coordinator_->connect(address(0, f), ranks[0][f]->name);
        group.followers.push_back({ranks[0][f]->name, "in-process", peer});
        reduce.peers.push_back(peer);
      }
      reducer_ = std::make_unique<TransportReducer>(*coordinator_, reduce, 10000ms);
      group.reducer = reducer_.get();
    }
    pipeline_ = std::make_unique<ClusterPipeline>(
        model::Model::load(file, groups[0].range, share(0, 0)), kCtx, pool_, *coordinator_,
        std::move(chain), ClusterPipelineOptions{}, 1, std::move(group));
  }

  ~TensorCluster() {
    for (auto& r : ranks_) r->stop = true;
    for (auto& r : ranks_) {
      if (r->thread.joinable()) r->thread.join();
    }
  }

  ClusterPipeline& pipeline() { return *pipeline_; }

 private:
  struct Rank {
    std::string name;
    std::unique_ptr<Transport> transport;
    std::unique_ptr<TransportReducer> reducer;
    std::unique_ptr<ThreadPool> pool;
    std::unique_ptr<StageServer> server;
    std::atomic<bool> stop{false};
    std::thread thread;
  };
  ThreadPool pool_{1};
  std::shared_ptr<LoopbackFabric> fabric_;
  std::unique_ptr<Transport> coordinator_;
  std::unique_ptr<TransportReducer> reducer_;
  std::vector<std::unique_ptr<Rank>> ranks_;
  std::unique_ptr<ClusterPipeline> pipeline_;
};

struct Output {
  std::vector<float> logits;  // the prompt's
  std::vector<std::int32_t> greedy;
  std::vector<float> refill;  // positions 16..31 again after truncate(16)
};

Output run(engine::Pipeline& p) {
  Output out;
  const int n_vocab = p.n_vocab();
  p.forward(kInput, 0, true, out.logits);
  std::int32_t next =
      herd::testing::argmax(out.logits.data() + (kInput.size() - 1) * n_vocab, n_vocab);
  std::vector<float> step;
  for (int i = 0; i < 16; ++i) {
    out.greedy.push_back(next);
    p.forward(std::span(&next, 1), static_cast<int>(kInput.size()) + i, false, step);
    next = herd::testing::argmax(step.data(), n_vocab);
  }
  p.truncate(16);
  p.forward(std::span(kInput).subspan(16), 16, true, out.refill);
  return out;
}

void expect_close(const Output& one, const Output& group, int n_vocab) {
  ASSERT_EQ(group.logits.size(), one.logits.size());
  double worst = 1.0;
  for (std::size_t p = 0; p < kInput.size(); ++p) {
    worst = std::min(worst, herd::testing::cosine(one.logits.data() + p * n_vocab,
                                                  group.logits.data() + p * n_vocab, n_vocab));
  }
  EXPECT_GE(worst, 0.99999);
  EXPECT_EQ(group.greedy, one.greedy);
  ASSERT_EQ(group.refill.size(), 16u * n_vocab);
  for (int p = 0; p < 16; ++p) {
    EXPECT_GE(herd::testing::cosine(one.logits.data() + (16 + p) * n_vocab,
                                    group.refill.data() + p * n_vocab, n_vocab),
              0.99999)
        << "after truncate, position " << 16 + p;
  }
}

class TensorGroupTest : public ::testing::TestWithParam<Kind> {};

TEST_P(TensorGroupTest, GroupsAndHybridGiveWhatOneNodeGives) {
  HERD_REQUIRE_SHARED(path, "golden/llama-f32.gguf");
  auto file = std::make_shared<const gguf::File>(gguf::File::open(path.string()));
  ThreadPool pool(1);
  engine::LocalPipeline local(model::Model::load(file), kCtx, pool);
  const Output one = run(local);
  const int n_layer = model::Model::load(file)->n_layer();
  const std::vector<std::pair<const char*, std::vector<GroupSpec>>> plans = {
      {"2 ranks", {{{0, n_layer}, {1, 1}}}},
      {"3 ranks, uneven", {{{0, n_layer}, {2, 1, 1}}}},
      {"two groups of two", {{{0, 1}, {1, 1}}, {{1, n_layer}, {1, 1}}}},
  };
  for (const auto& [name, groups] : plans) {
    SCOPED_TRACE(name);
    TensorCluster cluster(file, groups, GetParam());
    expect_close(one, run(cluster.pipeline()), local.n_vocab());
    cluster.pipeline().shutdown();
  }
}

INSTANTIATE_TEST_SUITE_P(Transport, TensorGroupTest,
                         ::testing::Values(Kind::kLoopback, Kind::kUcx),
                         [](const auto& info) {
                           return info.param == Kind::kLoopback ? "Loopback" : "Ucx";
                         });

TEST(TransportReducer, AddsThePartsInRankOrderOnEveryRank) {
  auto fabric = std::make_shared<LoopbackFabric>();
  constexpr int n = 3;
  std::vector<std::unique_ptr<Transport>> t;
  for (int r = 0; r < n; ++r) t.push_back(std::make_unique<LoopbackTransport>(fabric));
  std::vector<std::unique_ptr<TransportReducer>> reducers;
  {
    ReduceGroup g0{0, {}, n};
    for (int r = 1; r < n; ++r) g0.peers.push_back(t[0]->connect(t[r]->local_address(), "r"));
    reducers.push_back(std::make_unique<TransportReducer>(*t[0], g0));
    for (int r = 1; r < n; ++r) {
      ReduceGroup g{r, {}, n};
      for (int q = 0; q < n; ++q)
        if (q != r) g.peers.push_back(t[r]->connect(t[q]->local_address(), "rank"));
      reducers.push_back(std::make_unique<TransportReducer>(*t[r], g));
    }
  }
  // Values whose float sum depends on the order: 1e8 + 1 - 1e8.
  std::vector<std::vector<float>> data = {{1e8f, 1.0f}, {1.0f, 2.0f}, {-1e8f, 3.0f}};
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) {
    threads.emplace_back([&, r] {
      for (int round = 0; round < 3; ++round) {
        std::vector<float> v = data[r];
        reducers[r]->all_reduce(v.data(), 2);
        if (round == 2) data[r] = v;
      }
    });
  }
  for (auto& th : threads) th.join();
  const float expected0 = (1e8f + 1.0f) + -1e8f;  // rank order
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(data[r][0], expected0) << "rank " << r;
    EXPECT_EQ(data[r][1], 6.0f) << "rank " << r;
    EXPECT_EQ(reducers[r]->reductions(), 3u);
  }
}

TEST(TransportReducer, ASilentRankIsAnErrorNamingIt) {
  auto fabric = std::make_shared<LoopbackFabric>();
  LoopbackTransport a(fabric), b(fabric);
  const PeerId to_b = a.connect(b.local_address(), "node 'b'");
  b.connect(a.local_address(), "node 'a'");
  TransportReducer reducer(a, {0, {to_b}, 2}, 200ms);
  std::vector<float> v(4, 1.0f);
  try {
    reducer.all_reduce(v.data(), 4);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("node 'b'"), std::string::npos) << e.what();
  }
}

TEST(TransportReducer, RejectsAGroupWithoutItsPeers) {
  auto fabric = std::make_shared<LoopbackFabric>();
  LoopbackTransport a(fabric);
  EXPECT_THROW(TransportReducer(a, {0, {}, 2}), InvalidArgument);
  EXPECT_THROW(TransportReducer(a, {1, {}, 2}), InvalidArgument);
  EXPECT_THROW(TransportReducer(a, {0, {1, 2}, 2}), InvalidArgument);
}

}  // namespace
}  // namespace herd::cluster
