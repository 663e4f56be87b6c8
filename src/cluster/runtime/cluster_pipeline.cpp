#include "cluster/runtime/cluster_pipeline.h"

#include <fmt/format.h>

#include "cluster/runtime/stage_protocol.h"
#include "kernels/decode_shaped.h"
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

// "token 17" for a decode step, "positions 0..31" for a prompt, and the sequences of a batch.
std::string describe_step(const engine::Batch& batch) {
  const engine::BatchRun& r = batch.runs.front();
  std::string what = r.n_tokens == 1
                         ? fmt::format("token {}", r.pos0)
                         : fmt::format("positions {}..{}", r.pos0, r.pos0 + r.n_tokens - 1);
  if (batch.runs.size() == 1) return r.seq == 0 ? what : fmt::format("{} of sequence {}", what, r.seq);
  return fmt::format("a batch of {} sequences ({} tokens)", batch.runs.size(), batch.tokens.size());
}

}  // namespace

ClusterPipeline::ClusterPipeline(std::shared_ptr<const model::Model> first, int n_ctx,
                                 ThreadPool& pool, Transport& transport,
                                 std::vector<ChainNode> chain, ClusterPipelineOptions options,
                                 int n_seqs, TensorGroup group)
    : stage_(checked(std::move(first), chain), n_ctx, pool, n_seqs, group.reducer),
      transport_(transport),
      chain_(std::move(chain)),
      followers_(std::move(group.followers)),
      options_(options) {
  check_chain();
}

int ClusterPipeline::node_index(PeerId peer) const {
  for (std::size_t i = 0; i < chain_.size(); ++i) {
    if (chain_[i].peer == peer) return static_cast<int>(i);
  }
  return -1;
}

void ClusterPipeline::fail_node(const ChainNode& node, const std::string& during,
                                const std::string& why) const {
  fail("node '{}' ({}) stopped answering during {}: {}", node.name, node.where, during, why);
}

void ClusterPipeline::abandon(const std::string& why) {
  {
    std::lock_guard lock(abandon_mutex_);
    if (abandoned_) return;
    abandon_reason_ = why;
  }
  abandoned_ = true;
}

void ClusterPipeline::throw_if_abandoned() const {
  if (!abandoned_) return;
  std::lock_guard lock(abandon_mutex_);
  fail("{}", abandon_reason_);
}

void ClusterPipeline::run(const engine::Batch& batch, std::vector<float>& logits) {
  HERD_CHECK(pending_.empty());
  submit(batch);
  collect(logits);
}

int ClusterPipeline::in_flight() const {
  return static_cast<int>(pending_.size());
}

void ClusterPipeline::submit(const engine::Batch& batch) {
  if (batch.empty()) fail_argument("forward needs at least one token");
  throw_if_abandoned();
  stage_.check_batch(batch);
  const kernels::DecodeShaped shape(batch.decode_shaped);
  const int n = static_cast<int>(batch.tokens.size());
  Pending p;
  p.request = next_request_++;
  p.rows = batch.logit_rows();
  p.during = describe_step(batch);
  stage_.embed(batch.tokens, hidden_);
  StageHeader h;
  h.op = StageOp::kForward;
  h.kind = PayloadKind::kHidden;
  h.all_logits = batch.all_logits;
  h.decode_shaped = batch.decode_shaped;
  h.checksum = options_.checksum;
  h.request_id = p.request;
  h.pos0 = batch.runs.front().pos0;
  h.n_tokens = n;
  h.n_rows = n;
  h.row_width = stage_.n_embd();
  if (!followers_.empty()) {
    // The other ranks of our tensor-parallel group run the batch with us (stage_server.h).
    encode_stage_message(h, batch.runs, as_bytes(std::span<const float>(hidden_)), out_);
    for (const ChainNode& f : followers_) {
      try {
        transport_.send(f.peer, kStageTag, out_, options_.send_timeout);
      } catch (const Error& e) {
        fail_node(f, p.during, e.what());
      }
    }
  }
  stage_.run_layers(hidden_.data(), batch.runs);
  if (chain_.empty()) {
    stage_.head_for(hidden_.data(), batch.runs, batch.all_logits, p.logits);
    pending_.push_back(std::move(p));
    return;
  }
  encode_stage_message(h, batch.runs, as_bytes(std::span<const float>(hidden_)), out_);
  try {
    transport_.send(chain_[0].peer, kStageTag, out_, options_.send_timeout);
  } catch (const Error& e) {
    fail_node(chain_[0], p.during, e.what());
  }
  pending_.push_back(std::move(p));
}

void ClusterPipeline::collect(std::vector<float>& logits) {
  HERD_CHECK(!pending_.empty());
  Pending p = std::move(pending_.front());
  pending_.pop_front();
  if (chain_.empty()) {
    logits = std::move(p.logits);
    return;
  }
  try {
    wait_for_logits(p, logits);
  } catch (...) {
    drop_in_flight();
    throw;
  }
  settled_request_ = p.request;
}

void ClusterPipeline::drop_in_flight() {
  pending_.clear();
  settled_request_ = next_request_ - 1;
}

void ClusterPipeline::wait_for_logits(const Pending& pending, std::vector<float>& logits) {
  const std::uint64_t request = pending.request;
  const std::string& during = pending.during;
  const auto deadline = Clock::now() + options_.reply_timeout;
  for (;;) {
    throw_if_abandoned();
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
      if (index + 1 != static_cast<int>(chain_.size()) || h.kind != PayloadKind::kLogits ||
          h.n_rows != pending.rows || h.row_width != n_vocab()) {
        fail(
            "node '{}' ({}) answered {} with {} rows of {} values; expected {} rows of {} from "
            "the last node",
            chain_[index].name, chain_[index].where, during, h.n_rows, h.row_width, pending.rows,
            n_vocab());
      }
      copy_floats(m.payload, logits);
      return;
    }
    for (std::size_t i = 0; i < chain_.size(); ++i) {
      if (auto failure = transport_.peer_failure(chain_[i].peer)) {
        fail_node(chain_[i], during, *failure);
      }
    }
    if (Clock::now() >= deadline) {
      std::string why;
      if (const ChainNode* silent = find_silent_node(why)) {
        fail_node(
            *silent, during,
            fmt::format("no logits within {} ms, and {}", options_.reply_timeout.count(), why));
      }
      fail("no logits arrived within {} ms during {}, although every node answers a ping",
           options_.reply_timeout.count(), during);
    }
  }
}

const ChainNode* ClusterPipeline::find_silent_node(std::string& why) {
  std::vector<const ChainNode*> nodes;
  for (const ChainNode& f : followers_) nodes.push_back(&f);
  for (const ChainNode& c : chain_) nodes.push_back(&c);
  for (const ChainNode* n : nodes) {
    const ChainNode& node = *n;
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
        return n;
      }
    } catch (const Error& e) {
      why = e.what();
      return n;
    }
  }
  return nullptr;
}

void ClusterPipeline::check_chain() {
  std::string why;
  if (const ChainNode* silent = find_silent_node(why)) {
    const ChainNode& node = *silent;
    fail("node '{}' ({}) does not answer: {}", node.name, node.where, why);
  }
}

void ClusterPipeline::send_control(StageHeader& h, const std::string& what) {
  if (chain_.empty() && followers_.empty()) return;
  throw_if_abandoned();
  // No reply is awaited: messages on one link stay in order, so every node applies this before
  // it sees the next forward; a failure there comes back as a kError with this request's id.
  h.request_id = next_request_++;
  const std::vector<std::uint8_t> bytes = encode_stage_message(h);
  for (const ChainNode& f : followers_) {
    try {
      transport_.send(f.peer, kStageTag, bytes, options_.send_timeout);
    } catch (const Error& e) {
      fail_node(f, what, e.what());
    }
  }
  if (chain_.empty()) return;
  try {
    transport_.send(chain_[0].peer, kStageTag, bytes, options_.send_timeout);
  } catch (const Error& e) {
    fail_node(chain_[0], what, e.what());
  }
}

void ClusterPipeline::forget(std::int32_t seq, std::int32_t n_keep) {
  if (n_keep < 0) fail_argument("cannot keep {} positions", n_keep);
  stage_.truncate(seq, n_keep);
  StageHeader h;
  h.op = StageOp::kTruncate;
  h.pos0 = n_keep;
  h.seq = seq;
  send_control(h, fmt::format("a truncate of sequence {} to {} positions", seq, n_keep));
}

void ClusterPipeline::copy_prefix(std::int32_t src, std::int32_t dst, std::int32_t n) {
  stage_.copy_prefix(src, dst, n);
  StageHeader h;
  h.op = StageOp::kCopy;
  h.pos0 = n;
  h.seq = dst;
  h.src_seq = src;
  send_control(h, fmt::format("a copy of {} positions from sequence {} to {}", n, src, dst));
}

void ClusterPipeline::shutdown() {
  StageHeader h;
  h.op = StageOp::kShutdown;
  h.request_id = next_request_++;
  const std::vector<std::uint8_t> bytes = encode_stage_message(h);
  std::vector<const ChainNode*> first_hops;
  for (const ChainNode& f : followers_) first_hops.push_back(&f);
  if (!chain_.empty()) first_hops.push_back(&chain_[0]);
  for (const ChainNode* node : first_hops) {
    try {
      transport_.send(node->peer, kStageTag, bytes, options_.send_timeout);
    } catch (const Error& e) {
      log::warn("cluster pipeline: could not tell node '{}' to shut down: {}", node->name,
                e.what());
    }
  }
}

}  // namespace herd::cluster
