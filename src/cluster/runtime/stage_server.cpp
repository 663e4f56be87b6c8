#include "cluster/runtime/stage_server.h"

#include "cluster/runtime/stage_protocol.h"
#include "kernels/decode_shaped.h"
#include "util/error.h"
#include "util/log.h"

namespace herd::cluster {

namespace {

std::shared_ptr<const model::Model> checked(std::shared_ptr<const model::Model> model,
                                            const StageLinks& links) {
  HERD_CHECK(model != nullptr);
  if (links.follower) {
    if (links.next || !links.followers.empty())
      fail_argument("a tensor-parallel follower sends nothing on: it has no next hop or followers");
    return model;
  }
  if (model->has_head() && links.next) {
    fail_argument(
        "the stage for layers [{}, {}) holds the output head, so it is the last stage "
        "and must not have a next hop",
        model->range().first, model->range().last);
  }
  if (!model->has_head() && !links.next) {
    fail_argument("the stage for layers [{}, {}) lacks the output head and needs a next hop",
                  model->range().first, model->range().last);
  }
  return model;
}

}  // namespace

StageServer::StageServer(std::shared_ptr<const model::Model> model, int n_ctx, ThreadPool& pool,
                         Transport& transport, StageLinks links, StageServerOptions options,
                         int n_seqs, model::Reducer* reducer)
    : stage_(checked(std::move(model), links), n_ctx, pool, n_seqs, reducer),
      transport_(transport),
      links_(links),
      options_(options) {}

void StageServer::serve(const std::atomic<bool>* stop) {
  while (stop == nullptr || !stop->load()) {
    if (!serve_once(Millis(100))) return;
  }
}

bool StageServer::serve_once(Millis timeout) {
  auto received = transport_.try_receive(kStageTag, std::nullopt, timeout);
  if (!received) return true;
  StageMessage message;
  try {
    message = parse_stage_message(received->bytes);
  } catch (const FormatError& e) {
    log::warn("stage server: dropped a malformed message from {}: {}",
              transport_.peer_label(received->from), e.what());
    if (received->from == links_.coordinator) reply_error(0, e.what());
    return true;
  }
  const StageHeader& h = message.header;
  switch (h.op) {
    case StageOp::kForward:
      try {
        on_forward(message);
      } catch (const Error& e) {
        reply_error(h.request_id, e.what());
      }
      return true;
    case StageOp::kTruncate:
      on_truncate(message, received->bytes);
      return true;
    case StageOp::kCopy:
      on_copy(message, received->bytes);
      return true;
    case StageOp::kShutdown:
      pass_to_followers(received->bytes, "shutdown");
      if (links_.next) send_or_log(*links_.next, received->bytes, "shutdown");
      return false;
    case StageOp::kPing:
      if (received->from == links_.coordinator) {
        StageHeader pong;
        pong.op = StageOp::kPong;
        pong.request_id = h.request_id;
        send_or_log(links_.coordinator, encode_stage_message(pong), "pong");
      }
      return true;
    default:
      log::warn("stage server: ignored a '{}' message from {}", stage_op_name(h.op),
                transport_.peer_label(received->from));
      return true;
  }
}

void StageServer::on_forward(const StageMessage& message) {
  const StageHeader& h = message.header;
  const kernels::DecodeShaped shape(h.decode_shaped);
  const int n = h.n_tokens;
  const int n_embd = stage_.n_embd();
  if (n <= 0) fail_argument("a forward of {} tokens", n);
  if (message.runs.empty()) fail_argument("a forward of {} tokens came without its run table", n);
  const std::vector<engine::BatchRun>& runs = message.runs;  // checked by run_layers
  if (h.kind == PayloadKind::kTokens && h.n_rows == n && h.row_width == 1) {
    copy_tokens(message.payload, tokens_);
    stage_.embed(tokens_, hidden_);  // Error when this stage has no embedding
  } else if (h.kind == PayloadKind::kHidden && h.n_rows == n && h.row_width == n_embd) {
    copy_floats(message.payload, hidden_);
  } else {
    fail_argument(
        "a forward of {} tokens carried {} rows of {} elements (kind {}), but this "
        "stage takes tokens or hidden rows of {}",
        n, h.n_rows, h.row_width, static_cast<int>(h.kind), n_embd);
  }
  if (!links_.followers.empty()) {
    // The group's other ranks run the same batch from the same hidden rows, in step with us.
    StageHeader mirror = h;
    mirror.kind = PayloadKind::kHidden;
    mirror.n_rows = n;
    mirror.row_width = n_embd;
    mirror.checksum = options_.checksum;
    encode_stage_message(mirror, runs, as_bytes(std::span<const float>(hidden_)), out_);
    for (const PeerId f : links_.followers) {
      transport_.send(f, kStageTag, out_, options_.send_timeout);
    }
  }
  stage_.run_layers(hidden_.data(), runs);
  ++forwards_served_;
  if (links_.follower) return;

  StageHeader out = h;
  out.checksum = options_.checksum;
  if (links_.next) {
    out.kind = PayloadKind::kHidden;
    out.n_rows = n;
    out.row_width = n_embd;
    encode_stage_message(out, runs, as_bytes(std::span<const float>(hidden_)), out_);
    transport_.send(*links_.next, kStageTag, out_, options_.send_timeout);
    return;
  }
  stage_.head_for(hidden_.data(), runs, h.all_logits, logits_);
  out.op = StageOp::kLogits;
  out.kind = PayloadKind::kLogits;
  out.row_width = stage_.model().n_vocab();
  out.n_rows = static_cast<std::int32_t>(logits_.size() / static_cast<std::size_t>(out.row_width));
  encode_stage_message(out, as_bytes(std::span<const float>(logits_)), out_);
  transport_.send(links_.coordinator, kStageTag, out_, options_.send_timeout);
}

void StageServer::on_truncate(const StageMessage& message, std::span<const std::uint8_t> raw) {
  try {
    stage_.truncate(message.header.seq, message.header.pos0);
  } catch (const Error& e) {
    reply_error(message.header.request_id, e.what());
  }
  pass_to_followers(raw, "truncate");
  if (links_.next) send_or_log(*links_.next, raw, "truncate");
}

void StageServer::on_copy(const StageMessage& message, std::span<const std::uint8_t> raw) {
  const StageHeader& h = message.header;
  try {
    stage_.copy_prefix(h.src_seq, h.seq, h.pos0);
  } catch (const Error& e) {
    reply_error(h.request_id, e.what());
  }
  pass_to_followers(raw, "copy");
  if (links_.next) send_or_log(*links_.next, raw, "copy");
}

void StageServer::reply_error(std::uint64_t request_id, const std::string& text) {
  StageHeader h;
  h.op = StageOp::kError;
  h.kind = PayloadKind::kText;
  h.request_id = request_id;
  h.n_rows = 1;
  h.row_width = static_cast<std::int32_t>(text.size());
  const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(text.data()),
                                            text.size());
  send_or_log(links_.coordinator, encode_stage_message(h, bytes), "error report");
}

void StageServer::pass_to_followers(std::span<const std::uint8_t> bytes, const char* what) {
  for (const PeerId f : links_.followers) send_or_log(f, bytes, what);
}

void StageServer::send_or_log(PeerId peer, std::span<const std::uint8_t> bytes, const char* what) {
  try {
    transport_.send(peer, kStageTag, bytes, options_.send_timeout);
  } catch (const Error& e) {
    log::error("stage server: could not send a {} to {}: {}", what, transport_.peer_label(peer),
               e.what());
  }
}

}  // namespace herd::cluster
