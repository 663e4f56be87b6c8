#include "cluster/cluster_pipeline.h"

#include <fmt/format.h>

#include "cluster/stage_protocol.h"
#include "util/error.h"
#include "util/log.h"

namespace herd::cluster {

namespace {

using Clock = std::chrono::steady_clock;

std::shared_ptr<const model::Model> checked(std::shared_ptr<const model::Model> model,
                                            const std::vector<ChainNode>& chain) {
  HERD_CHECK(model != nullptr);
  if (!model->has_embedding()) {
    fail_argument(
        "the coordinator's stage must start at layer 0 (it embeds the tokens), but it "
        "was loaded for [{}, {})",
        model->range().first, model->range().last);
  }
  if (model->has_head() != chain.empty()) {
    fail_argument(
        "the coordinator holds layers [{}, {}) of {} but the chain has {} more "
        "stages",
        model->range().first, model->range().last, model->n_layer(), chain.size());
  }
  return model;
}

// "token 17" for a decode step, "the prompt (positions 0..31)" for a batch.
std::string describe_step(std::int32_t pos0, int n_tokens) {
  if (n_tokens == 1) return fmt::format("token {}", pos0);
  return fmt::format("positions {}..{}", pos0, pos0 + n_tokens - 1);
}

}  // namespace

ClusterPipeline::ClusterPipeline(std::shared_ptr<const model::Model> first, int n_ctx,
                                 ThreadPool& pool, Transport& transport,
                                 std::vector<ChainNode> chain, ClusterPipelineOptions options)
    : stage_(checked(std::move(first), chain), n_ctx, pool),
      transport_(transport),
      chain_(std::move(chain)),
      options_(options) {
  check_chain();
}

int ClusterPipeline::node_index(PeerId peer) const {
  for (std::size_t i = 0; i < chain_.size(); ++i) {
    if (chain_[i].peer == peer) return static_cast<int>(i);
  }
  return -1;
}

void ClusterPipeline::fail_node(int index, const std::string& during,
                                const std::string& why) const {
  const ChainNode& node = chain_.at(index);
  fail("node '{}' ({}) stopped answering during {}: {}", node.name, node.where, during, why);
}

void ClusterPipeline::forward(std::span<const std::int32_t> tokens, std::int32_t pos0,
                              bool all_logits, std::vector<float>& logits) {
  if (tokens.empty()) fail_argument("forward needs at least one token");
  const int n = static_cast<int>(tokens.size());
  stage_.embed(tokens, hidden_);
  stage_.run_layers(hidden_.data(), n, pos0);
  const int n_embd = stage_.n_embd();
  if (chain_.empty()) {
    const int rows = all_logits ? n : 1;
    stage_.head(hidden_.data() + static_cast<std::size_t>(n - rows) * n_embd, rows, logits);
    return;
  }
  StageHeader h;
  h.op = StageOp::kForward;
  h.kind = PayloadKind::kHidden;
  h.all_logits = all_logits;
  h.checksum = options_.checksum;
  h.request_id = next_request_++;
  h.pos0 = pos0;
  h.n_tokens = n;
  h.n_rows = n;
  h.row_width = n_embd;
  encode_stage_message(h, as_bytes(std::span<const float>(hidden_)), out_);
  try {
    transport_.send(chain_[0].peer, kStageTag, out_, options_.send_timeout);
  } catch (const Error& e) {
    fail_node(0, describe_step(pos0, n), e.what());
  }
  wait_for_logits(n, pos0, all_logits, logits);
  settled_request_ = h.request_id;
}

void ClusterPipeline::wait_for_logits(int n_tokens, std::int32_t pos0, bool all_logits,
                                      std::vector<float>& logits) {
  const std::uint64_t request = next_request_ - 1;
  const std::string during = describe_step(pos0, n_tokens);
  const auto deadline = Clock::now() + options_.reply_timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
    auto received =
        transport_.try_receive(kStageTag, std::nullopt, std::clamp(left, Millis(0), Millis(100)));
    if (received) {
      const int index = node_index(received->from);
      if (index < 0) {
        log::warn("cluster pipeline: ignored a message from {}, not in the chain",
                  transport_.peer_label(received->from));
        continue;
      }
      StageMessage m;
      try {
        m = parse_stage_message(received->bytes);
      } catch (const FormatError& e) {
        fail("node '{}' ({}) sent a malformed reply during {}: {}", chain_[index].name,
             chain_[index].where, during, e.what());
      }
      const StageHeader& h = m.header;
      if (h.op == StageOp::kError && (h.request_id > settled_request_ || h.request_id == 0)) {
        fail("node '{}' ({}) failed during {}: {}", chain_[index].name, chain_[index].where, during,
             std::string(m.payload.begin(), m.payload.end()));
      }
      if (h.op != StageOp::kLogits || h.request_id != request) continue;  // stale or a late pong
      const int rows = all_logits ? n_tokens : 1;
      if (index + 1 != static_cast<int>(chain_.size()) || h.kind != PayloadKind::kLogits ||
          h.n_rows != rows || h.row_width != n_vocab()) {
        fail(
            "node '{}' ({}) answered {} with {} rows of {} values; expected {} rows of {} from "
            "the last node",
            chain_[index].name, chain_[index].where, during, h.n_rows, h.row_width, rows,
            n_vocab());
      }
      copy_floats(m.payload, logits);
      return;
    }
    for (std::size_t i = 0; i < chain_.size(); ++i) {
      if (auto failure = transport_.peer_failure(chain_[i].peer)) {
        fail_node(static_cast<int>(i), during, *failure);
      }
    }
    if (Clock::now() >= deadline) {
      std::string why;
      const int silent = find_silent_node(why);
      if (silent >= 0) {
        fail_node(
            silent, during,
            fmt::format("no logits within {} ms, and {}", options_.reply_timeout.count(), why));
      }
      fail("no logits arrived within {} ms during {}, although every node answers a ping",
           options_.reply_timeout.count(), during);
    }
  }
}

int ClusterPipeline::find_silent_node(std::string& why) {
  for (std::size_t i = 0; i < chain_.size(); ++i) {
    const ChainNode& node = chain_[i];
    StageHeader ping;
    ping.op = StageOp::kPing;
    ping.request_id = next_request_++;
    try {
      transport_.send(node.peer, kStageTag, encode_stage_message(ping), options_.send_timeout);
      const auto deadline = Clock::now() + options_.probe_timeout;
      bool answered = false;
      while (!answered) {
        const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
        if (left <= Millis(0)) break;
        auto reply = transport_.try_receive(kStageTag, node.peer, left);
        if (!reply) break;
        const StageMessage m = parse_stage_message(reply->bytes);
        answered = m.header.op == StageOp::kPong && m.header.request_id == ping.request_id;
      }
      if (!answered) {
        why = fmt::format("it did not answer a ping within {} ms", options_.probe_timeout.count());
        return static_cast<int>(i);
      }
    } catch (const Error& e) {
      why = e.what();
      return static_cast<int>(i);
    }
  }
  return -1;
}

void ClusterPipeline::check_chain() {
  std::string why;
  const int silent = find_silent_node(why);
  if (silent >= 0) {
    const ChainNode& node = chain_[silent];
    fail("node '{}' ({}) does not answer: {}", node.name, node.where, why);
  }
}

void ClusterPipeline::truncate(std::int32_t n_keep) {
  if (n_keep < 0) fail_argument("cannot keep {} positions", n_keep);
  stage_.truncate(n_keep);
  if (chain_.empty()) return;
  // No reply is awaited: messages on one link stay in order, so every node truncates before it
  // sees the next forward; a failure there comes back as a kError with this request's id.
  StageHeader h;
  h.op = StageOp::kTruncate;
  h.request_id = next_request_++;
  h.pos0 = n_keep;
  try {
    transport_.send(chain_[0].peer, kStageTag, encode_stage_message(h), options_.send_timeout);
  } catch (const Error& e) {
    fail_node(0, fmt::format("a truncate to {} positions", n_keep), e.what());
  }
}

void ClusterPipeline::shutdown() {
  if (chain_.empty()) return;
  StageHeader h;
  h.op = StageOp::kShutdown;
  h.request_id = next_request_++;
  try {
    transport_.send(chain_[0].peer, kStageTag, encode_stage_message(h), options_.send_timeout);
  } catch (const Error& e) {
    log::warn("cluster pipeline: could not tell node '{}' to shut down: {}", chain_[0].name,
              e.what());
  }
}

}  // namespace herd::cluster
