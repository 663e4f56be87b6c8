// The exchange of tensor parallelism over a Transport: model::Reducer for one rank of a group.
//
// Each all-reduce is one Transport::exchange: every rank sends its partial to every other rank
// and receives theirs, all at once (both directions of every link busy together, no rank in the
// middle), then adds the partials in rank order, so every rank continues from bitwise the same
// hidden state. A rank sends (n - 1) partials: for the groups of a cluster of ordinary machines
// (2-4 nodes) that is one message time per all-reduce, which is what decode (n_embd floats a
// token) needs; a ring would send less per rank for larger groups and long prompts.
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
  // Every other rank of the group, in rank order (n_ranks - 1 peers), connected on the transport.
  std::vector<PeerId> peers;
  int n_ranks = 1;
};

class TransportReducer final : public model::Reducer {
 public:
  TransportReducer(Transport& transport, ReduceGroup group, Millis timeout = Millis(60000));

  void all_reduce(float* data, std::int64_t n) override;
  std::uint64_t reductions() const { return ordinal_; }
  // Time spent in all_reduce: the exchange, and waiting for slower ranks.
  double seconds() const { return seconds_; }

 private:
  // Checks rank `rank`'s message and returns its values.
  const float* values_of(const ReceivedMessage& message, int rank, std::int64_t n);

  Transport& transport_;
  ReduceGroup group_;
  Millis timeout_;
  std::uint64_t ordinal_ = 0;
  double seconds_ = 0;
  std::vector<std::uint8_t> out_;
  std::vector<float> own_;   // this rank's partial, kept while the others' arrive
  std::vector<float> part_;  // a received partial, aligned
};

}  // namespace herd::cluster
