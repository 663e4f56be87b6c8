// The exchange of tensor parallelism over a Transport: model::Reducer for one rank of a group.
//
// Each all-reduce gathers every rank's partial at rank 0, which adds them in rank order and sends
// the sum back to every other rank, so every rank continues from bitwise the same hidden state.
// Two hops, like a pairwise exchange between two nodes, and free of send/send deadlocks: a rank
// only ever sends to a peer that is waiting to receive (UCX may need the receiver to progress a
// large message). For the group sizes of a cluster of ordinary machines (2-8) and decode-sized
// messages (n_embd floats per token) the latency of a hop dominates; a ring would move fewer bytes
// through rank 0 for long prompts.
//
// Wire format (tag kReduceTag): 16-byte header — magic "HAR1", the sending rank (u32), the
// all-reduce's ordinal in this group (u64) — then the n f32 values, little-endian. The ordinal
// catches ranks that fell out of step (a bug, or a rank restarted mid-request): Error, not
// garbage. A rank that dies or stops answering is an Error naming it within `timeout`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cluster/transport/transport.h"
#include "model/tensor_split.h"

namespace herd::cluster {

constexpr std::size_t kReduceHeaderBytes = 16;

struct ReduceGroup {
  int rank = 0;
  // Rank 0: the peers of ranks 1..n-1 in order; other ranks: just rank 0's peer.
  std::vector<PeerId> peers;
  int n_ranks = 1;
};

class TransportReducer final : public model::Reducer {
 public:
  TransportReducer(Transport& transport, ReduceGroup group, Millis timeout = Millis(60000));

  void all_reduce(float* data, std::int64_t n) override;
  std::uint64_t reductions() const { return ordinal_; }

 private:
  void send_values(PeerId peer, const float* data, std::int64_t n);
  // Receives rank `rank`'s message from `peer` and checks it; returns its values (in sum_).
  const float* receive_values(PeerId peer, int rank, std::int64_t n);

  Transport& transport_;
  ReduceGroup group_;
  Millis timeout_;
  std::uint64_t ordinal_ = 0;
  std::vector<std::uint8_t> out_;
  ReceivedMessage in_;
  std::vector<float> sum_;  // the values received last
};

}  // namespace herd::cluster
