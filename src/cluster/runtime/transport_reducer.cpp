#include "cluster/runtime/transport_reducer.h"

#include <cstring>

#include "util/error.h"

namespace herd::cluster {

namespace {

constexpr std::uint32_t kMagic = 0x31524148;  // "HAR1"

}  // namespace

TransportReducer::TransportReducer(Transport& transport, ReduceGroup group, Millis timeout)
    : transport_(transport), group_(std::move(group)), timeout_(timeout) {
  const std::size_t want = group_.rank == 0 ? static_cast<std::size_t>(group_.n_ranks - 1) : 1;
  if (group_.n_ranks < 2 || group_.rank < 0 || group_.rank >= group_.n_ranks ||
      group_.peers.size() != want) {
    fail_argument("rank {} of a {}-rank group needs {} peer(s), got {}", group_.rank,
                  group_.n_ranks, want, group_.peers.size());
  }
}

void TransportReducer::send_values(PeerId peer, const float* data, std::int64_t n) {
  out_.resize(kReduceHeaderBytes + static_cast<std::size_t>(n) * sizeof(float));
  const std::uint32_t rank = static_cast<std::uint32_t>(group_.rank);
  std::memcpy(out_.data(), &kMagic, 4);
  std::memcpy(out_.data() + 4, &rank, 4);
  std::memcpy(out_.data() + 8, &ordinal_, 8);
  std::memcpy(out_.data() + kReduceHeaderBytes, data, static_cast<std::size_t>(n) * sizeof(float));
  transport_.send(peer, kReduceTag, out_, timeout_);
}

const float* TransportReducer::receive_values(PeerId peer, int rank, std::int64_t n) {
  auto got = transport_.try_receive(kReduceTag, peer, timeout_);
  if (!got) {
    fail("{} (tensor-parallel rank {}) sent no partial sum within {} s (all-reduce {})",
         transport_.peer_label(peer), rank, timeout_.count() / 1000.0, ordinal_);
  }
  in_ = std::move(*got);
  const std::size_t want = kReduceHeaderBytes + static_cast<std::size_t>(n) * sizeof(float);
  std::uint32_t magic = 0, from_rank = 0;
  std::uint64_t ordinal = 0;
  if (in_.bytes.size() >= kReduceHeaderBytes) {
    std::memcpy(&magic, in_.bytes.data(), 4);
    std::memcpy(&from_rank, in_.bytes.data() + 4, 4);
    std::memcpy(&ordinal, in_.bytes.data() + 8, 8);
  }
  if (in_.bytes.size() != want || magic != kMagic || from_rank != static_cast<std::uint32_t>(rank) ||
      ordinal != ordinal_) {
    fail("{} sent a partial sum out of step: {} bytes from rank {} for all-reduce {}, expected {} "
         "bytes from rank {} for all-reduce {}",
         transport_.peer_label(peer), in_.bytes.size(), from_rank, ordinal, want, rank, ordinal_);
  }
  sum_.resize(static_cast<std::size_t>(n));
  std::memcpy(sum_.data(), in_.bytes.data() + kReduceHeaderBytes,
              static_cast<std::size_t>(n) * sizeof(float));
  return sum_.data();
}

void TransportReducer::all_reduce(float* data, std::int64_t n) {
  if (group_.rank == 0) {
    // Adds the ranks' parts in rank order: p0 + p1 + ... on every rank alike.
    for (int r = 1; r < group_.n_ranks; ++r) {
      const float* part = receive_values(group_.peers[r - 1], r, n);
      for (std::int64_t i = 0; i < n; ++i) data[i] += part[i];
    }
    for (int r = 1; r < group_.n_ranks; ++r) send_values(group_.peers[r - 1], data, n);
  } else {
    send_values(group_.peers[0], data, n);
    const float* sum = receive_values(group_.peers[0], 0, n);
    std::memcpy(data, sum, static_cast<std::size_t>(n) * sizeof(float));
  }
  ++ordinal_;
}

}  // namespace herd::cluster
