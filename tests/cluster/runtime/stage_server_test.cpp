// StageServer driven by hand over the loopback transport: what it forwards, what it answers,
// and that a bad request becomes an error reply while the server keeps serving.
#include "cluster/runtime/stage_server.h"

#include <gtest/gtest.h>

#include <random>

#include "cluster/runtime/stage_protocol.h"
#include "cluster/transport/transport_loopback.h"
#include "gguf/reader.h"
#include "model/synthetic_model.h"
#include "support/test_data.h"
#include "util/error.h"

namespace herd::cluster {
namespace {

using namespace std::chrono_literals;

std::shared_ptr<const gguf::File> two_layer_file() {
  static const auto path = [] {
    auto p = herd::testing::temp_dir("stage_server") / "synthetic.gguf";
    model::SyntheticSpec spec;
    spec.n_embd = 32;
    spec.n_layer = 2;
    spec.n_head = 2;
    spec.n_kv_head = 1;
    spec.n_ff = 64;
    model::write_synthetic_model(spec, p.string());
    return p;
  }();
  return std::make_shared<const gguf::File>(gguf::File::open(path.string()));
}

// A server for `range` with a loopback coordinator and (unless it holds the head) a next hop
// that the test reads from.
struct Rig {
  explicit Rig(model::LayerRange range, int n_ctx = 16) {
    auto file = two_layer_file();
    auto model = model::Model::load(file, range);
    StageLinks links;
    links.coordinator = server_side->connect(coordinator->local_address(), "coordinator");
    if (!model->has_head()) links.next = server_side->connect(next->local_address(), "node 'c'");
    coordinator_to_server = coordinator->connect(server_side->local_address(), "node 'b'");
    server = std::make_unique<StageServer>(model, n_ctx, pool, *server_side, links);
  }
  void send(const std::vector<std::uint8_t>& bytes) {
    coordinator->send(coordinator_to_server, kStageTag, bytes, 1s);
  }
  // Serves one message and returns the message it sent to `to` (the coordinator or next).
  StageMessage serve_and_read(Transport& to) {
    EXPECT_TRUE(server->serve_once(1s));
    last = to.receive(kStageTag, server_side->self(), 1s);
    return parse_stage_message(last.bytes);
  }
  std::string error_text(const StageMessage& m) {
    EXPECT_EQ(m.header.op, StageOp::kError);
    return {m.payload.begin(), m.payload.end()};
  }

  std::shared_ptr<LoopbackFabric> fabric = std::make_shared<LoopbackFabric>();
  std::unique_ptr<Transport> coordinator = std::make_unique<LoopbackTransport>(fabric);
  std::unique_ptr<Transport> server_side = std::make_unique<LoopbackTransport>(fabric);
  std::unique_ptr<Transport> next = std::make_unique<LoopbackTransport>(fabric);
  PeerId coordinator_to_server = 0;
  ThreadPool pool{1};
  std::unique_ptr<StageServer> server;
  ReceivedMessage last;
};

StageHeader forward_header(PayloadKind kind, int n, int width, int pos0, std::uint64_t id) {
  StageHeader h;
  h.op = StageOp::kForward;
  h.kind = kind;
  h.request_id = id;
  h.pos0 = pos0;
  h.n_tokens = n;
  h.n_rows = n;
  h.row_width = width;
  return h;
}

// A forward as the coordinator sends it: one run of sequence 0 whose last logits are wanted.
std::vector<std::uint8_t> forward_message(const StageHeader& h,
                                          std::span<const std::uint8_t> rows) {
  const engine::BatchRun run{0, h.pos0, h.n_tokens, true};
  std::vector<std::uint8_t> out;
  encode_stage_message(h, std::span(&run, 1), rows, out);
  return out;
}

std::vector<std::uint8_t> tokens_message(const std::vector<std::int32_t>& tokens, int pos0,
                                         std::uint64_t id) {
  return forward_message(
      forward_header(PayloadKind::kTokens, static_cast<int>(tokens.size()), 1, pos0, id),
      as_bytes(std::span(tokens)));
}

TEST(StageServer, FirstStageEmbedsTokensAndForwardsHidden) {
  Rig rig({0, 1});
  rig.send(tokens_message({1, 2, 3}, 0, 7));
  const StageMessage m = rig.serve_and_read(*rig.next);
  EXPECT_EQ(m.header.op, StageOp::kForward);
  EXPECT_EQ(m.header.kind, PayloadKind::kHidden);
  EXPECT_EQ(m.header.request_id, 7u);
  EXPECT_EQ(m.header.n_rows, 3);
  EXPECT_EQ(m.header.row_width, 32);
  EXPECT_EQ(rig.server->stage().n_cached(), 3);
}

TEST(StageServer, LastStageSendsOnlyTheAskedForLogitRows) {
  Rig rig({1, 2});
  std::vector<float> hidden(4 * 32, 0.25f);
  auto h = forward_header(PayloadKind::kHidden, 4, 32, 0, 11);
  rig.send(forward_message(h, as_bytes(std::span<const float>(hidden))));
  StageMessage m = rig.serve_and_read(*rig.coordinator);
  EXPECT_EQ(m.header.op, StageOp::kLogits);
  EXPECT_EQ(m.header.request_id, 11u);
  EXPECT_EQ(m.header.n_rows, 1);
  EXPECT_EQ(m.header.row_width, 259);
  h.all_logits = true;
  h.pos0 = 4;
  h.request_id = 12;
  rig.send(forward_message(h, as_bytes(std::span<const float>(hidden))));
  m = rig.serve_and_read(*rig.coordinator);
  EXPECT_EQ(m.header.n_rows, 4);
  EXPECT_EQ(m.payload.size(), 4u * 259 * sizeof(float));
}

TEST(StageServer, BadRequestsBecomeErrorRepliesAndServingGoesOn) {
  Rig rig({1, 2});
  // Tokens to a stage without the embedding.
  rig.send(tokens_message({1, 2}, 0, 1));
  EXPECT_NE(rig.error_text(rig.serve_and_read(*rig.coordinator)).find("no token embedding"),
            std::string::npos);
  // Hidden rows of the wrong width.
  std::vector<float> hidden(2 * 16, 0.0f);
  rig.send(forward_message(forward_header(PayloadKind::kHidden, 2, 16, 0, 2),
                                as_bytes(std::span<const float>(hidden))));
  auto m = rig.serve_and_read(*rig.coordinator);
  EXPECT_EQ(m.header.request_id, 2u);
  EXPECT_NE(rig.error_text(m).find("hidden rows of 32"), std::string::npos);
  // A gap in positions.
  hidden.assign(32, 0.0f);
  rig.send(forward_message(forward_header(PayloadKind::kHidden, 1, 32, 5, 3),
                                as_bytes(std::span<const float>(hidden))));
  EXPECT_NE(rig.error_text(rig.serve_and_read(*rig.coordinator)).find("gap"), std::string::npos);
  // Garbage.
  rig.send({1, 2, 3, 4});
  EXPECT_NE(rig.error_text(rig.serve_and_read(*rig.coordinator)).find("shorter"),
            std::string::npos);
  // Past the context.
  hidden.assign(20 * 32, 0.0f);
  rig.send(forward_message(forward_header(PayloadKind::kHidden, 20, 32, 0, 4),
                                as_bytes(std::span<const float>(hidden))));
  EXPECT_NE(rig.error_text(rig.serve_and_read(*rig.coordinator)).find("context"),
            std::string::npos);
  // Still serving: a ping is answered.
  StageHeader ping;
  ping.op = StageOp::kPing;
  ping.request_id = 99;
  rig.send(encode_stage_message(ping));
  m = rig.serve_and_read(*rig.coordinator);
  EXPECT_EQ(m.header.op, StageOp::kPong);
  EXPECT_EQ(m.header.request_id, 99u);
}

// 10^4 malformed messages (mutations of every kind of valid message: flipped bytes, truncated,
// extended), from the coordinator: none crashes the server or changes the answer to a correct
// forward afterwards.
TEST(StageServer, TenThousandMalformedMessagesLeaveItServingExactly) {
  Rig rig({0, 2});  // embedding, both layers and the head
  const std::vector<std::int32_t> prompt = {1, 2, 3};
  rig.send(tokens_message(prompt, 0, 1));
  const StageMessage first = rig.serve_and_read(*rig.coordinator);
  ASSERT_EQ(first.header.op, StageOp::kLogits);
  const std::vector<std::uint8_t> expected(first.payload.begin(), first.payload.end());

  StageHeader truncate;
  truncate.op = StageOp::kTruncate;
  truncate.pos0 = 0;
  StageHeader copy;
  copy.op = StageOp::kCopy;
  copy.pos0 = 1;
  StageHeader ping;
  ping.op = StageOp::kPing;
  std::vector<float> hidden(2 * 32, 0.5f);
  const std::vector<std::vector<std::uint8_t>> valid = {
      tokens_message({4, 5}, 0, 7), encode_stage_message(truncate), encode_stage_message(copy),
      encode_stage_message(ping),
      forward_message(forward_header(PayloadKind::kHidden, 2, 32, 0, 8),
                      as_bytes(std::span<const float>(hidden)))};
  std::mt19937 rng(1207);
  int sent = 0;
  while (sent < 10000) {
    std::vector<std::uint8_t> bytes = valid[rng() % valid.size()];
    switch (rng() % 3) {
      case 0:
        for (int e = 0; e < 1 + static_cast<int>(rng() % 6); ++e)
          bytes[rng() % bytes.size()] = static_cast<std::uint8_t>(rng());
        break;
      case 1:
        bytes.resize(rng() % bytes.size());
        break;
      default:
        for (int e = 0; e < 1 + static_cast<int>(rng() % 64); ++e)
          bytes.push_back(static_cast<std::uint8_t>(rng()));
        break;
    }
    // A mutation that happens to read as a valid shutdown would end the server, as it should.
    try {
      if (parse_stage_message(bytes).header.op == StageOp::kShutdown) continue;
    } catch (const FormatError&) {
    }
    rig.send(bytes);
    ASSERT_TRUE(rig.server->serve_once(1s));
    while (rig.coordinator->try_receive(kStageTag, std::nullopt, 0ms)) {
    }
    ++sent;
  }
  rig.send(encode_stage_message(truncate));
  ASSERT_TRUE(rig.server->serve_once(1s));
  while (rig.coordinator->try_receive(kStageTag, std::nullopt, 0ms)) {
  }
  rig.send(tokens_message(prompt, 0, 9));
  const StageMessage again = rig.serve_and_read(*rig.coordinator);
  ASSERT_EQ(again.header.op, StageOp::kLogits);
  EXPECT_EQ(std::vector<std::uint8_t>(again.payload.begin(), again.payload.end()), expected);
}

TEST(StageServer, TruncateAndShutdownTravelDownTheChain) {
  Rig rig({0, 1});
  rig.send(tokens_message({1, 2, 3, 4}, 0, 1));
  rig.serve_and_read(*rig.next);
  StageHeader truncate;
  truncate.op = StageOp::kTruncate;
  truncate.pos0 = 2;
  rig.send(encode_stage_message(truncate));
  auto m = rig.serve_and_read(*rig.next);
  EXPECT_EQ(m.header.op, StageOp::kTruncate);
  EXPECT_EQ(m.header.pos0, 2);
  EXPECT_EQ(rig.server->stage().n_cached(), 2);

  StageHeader shutdown;
  shutdown.op = StageOp::kShutdown;
  rig.send(encode_stage_message(shutdown));
  EXPECT_FALSE(rig.server->serve_once(1s));
  m = parse_stage_message(rig.next->receive(kStageTag, std::nullopt, 1s).bytes);
  EXPECT_EQ(m.header.op, StageOp::kShutdown);
}

TEST(StageServer, RangeAndLinksMustAgree) {
  auto file = two_layer_file();
  auto fabric = std::make_shared<LoopbackFabric>();
  LoopbackTransport t(fabric), other(fabric);
  ThreadPool pool(1);
  const PeerId peer = t.connect(other.local_address(), "other");
  EXPECT_THROW(StageServer(model::Model::load(file, model::LayerRange{1, 2}), 8, pool, t,
                           StageLinks{peer, peer}),
               InvalidArgument);
  EXPECT_THROW(StageServer(model::Model::load(file, model::LayerRange{0, 1}), 8, pool, t,
                           StageLinks{peer, std::nullopt}),
               InvalidArgument);
}

}  // namespace
}  // namespace herd::cluster
