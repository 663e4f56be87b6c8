// A worker node's side of a pipeline: owns an engine::Stage for its layer range and serves the
// stage protocol (stage_protocol.h). Loop: receive from the previous hop; embed (first stage,
// tokens in) and run the layers; pass the hidden state to the next hop, or, holding the head,
// send the asked-for logits rows (the last, or all) to the coordinator. Truncate and shutdown
// travel down the chain. A request that fails here becomes a kError reply to the coordinator;
// the server keeps serving.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cluster/transport/transport.h"
#include "engine/stage.h"

namespace herd::cluster {

struct StageMessage;

struct StageLinks {
  PeerId coordinator = 0;      // replies: logits, errors, pongs (a follower: its group's leader)
  std::optional<PeerId> next;  // the next stage; absent on the stage that holds the head
  // Tensor parallelism (model/tensor_split.h). The leader (rank 0) of a group passes every
  // forward (as hidden rows), truncate, copy and shutdown on to its followers, the group's other
  // ranks, before running it itself; the ranks add up their partial sums through the reducer
  // while they run the layers. A follower only runs the layers: the leader sends the result on.
  std::vector<PeerId> followers;
  bool follower = false;
};

struct StageServerOptions {
  Millis send_timeout{10000};
  bool checksum = false;  // add a payload checksum to what this node sends
};

class StageServer {
 public:
  // Both links must be connected on `transport`. InvalidArgument when the model's range and the
  // links disagree (a stage with the head has no next hop, one without needs one). A model
  // holding a tensor slice needs the reducer of its group (engine::Stage), which must outlive
  // the server.
  StageServer(std::shared_ptr<const model::Model> model, int n_ctx, ThreadPool& pool,
              Transport& transport, StageLinks links, StageServerOptions options = {},
              int n_seqs = 1, model::Reducer* reducer = nullptr);

  // Serves until a shutdown message arrives or `stop` becomes true (checked every 100 ms).
  void serve(const std::atomic<bool>* stop = nullptr);
  // Handles at most one message, waiting up to `timeout` for it; false once shut down.
  bool serve_once(Millis timeout);

  const engine::Stage& stage() const { return stage_; }
  std::uint64_t forwards_served() const { return forwards_served_; }

 private:
  void on_forward(const StageMessage& message);
  void on_truncate(const StageMessage& message, std::span<const std::uint8_t> raw);
  void on_copy(const StageMessage& message, std::span<const std::uint8_t> raw);
  void reply_error(std::uint64_t request_id, const std::string& text);
  void send_or_log(PeerId peer, std::span<const std::uint8_t> bytes, const char* what);
  void pass_to_followers(std::span<const std::uint8_t> bytes, const char* what);

  engine::Stage stage_;
  Transport& transport_;
  StageLinks links_;
  StageServerOptions options_;
  std::vector<std::int32_t> tokens_;
  std::vector<float> hidden_;  // [n_tokens, n_embd]
  std::vector<float> logits_;  // [n_rows, n_vocab]
  std::vector<std::uint8_t> out_;
  std::uint64_t forwards_served_ = 0;
};

}  // namespace herd::cluster
