#include "cluster/runtime/transport_reducer.h"

#include <chrono>
#include <cstring>

#include "util/error.h"

namespace herd::cluster {

namespace {

constexpr std::uint32_t kMagic = 0x31524148;  // "HAR1"

}  // namespace

TransportReducer::TransportReducer(Transport& transport, ReduceGroup group, Millis timeout)
    : transport_(transport), group_(std::move(group)), timeout_(timeout) {
  if (group_.n_ranks < 2 || group_.rank < 0 || group_.rank >= group_.n_ranks ||
      group_.peers.size() != static_cast<std::size_t>(group_.n_ranks - 1)) {
    fail_argument("rank {} of a {}-rank group needs the other {} ranks' peers, got {}",
                  group_.rank, group_.n_ranks, group_.n_ranks - 1, group_.peers.size());
  }
}

const float* TransportReducer::values_of(const ReceivedMessage& message, int rank,
                                         std::int64_t n) {
  const std::size_t want = kReduceHeaderBytes + static_cast<std::size_t>(n) * sizeof(float);
  std::uint32_t magic = 0, from_rank = 0;
  std::uint64_t ordinal = 0;
  if (message.bytes.size() >= kReduceHeaderBytes) {
    std::memcpy(&magic, message.bytes.data(), 4);
    std::memcpy(&from_rank, message.bytes.data() + 4, 4);
    std::memcpy(&ordinal, message.bytes.data() + 8, 8);
  }
  if (message.bytes.size() != want || magic != kMagic ||
      from_rank != static_cast<std::uint32_t>(rank) || ordinal != ordinal_) {
    fail("{} sent a partial sum out of step: {} bytes from rank {} for all-reduce {}, expected {} "
         "bytes from rank {} for all-reduce {}",
         transport_.peer_label(message.from), message.bytes.size(), from_rank, ordinal, want, rank,
         ordinal_);
  }
  part_.resize(static_cast<std::size_t>(n));
  std::memcpy(part_.data(), message.bytes.data() + kReduceHeaderBytes,
              static_cast<std::size_t>(n) * sizeof(float));
  return part_.data();
}

void TransportReducer::all_reduce(float* data, std::int64_t n) {
  const auto start = std::chrono::steady_clock::now();
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(float);
  out_.resize(kReduceHeaderBytes + bytes);
  const std::uint32_t rank = static_cast<std::uint32_t>(group_.rank);
  std::memcpy(out_.data(), &kMagic, 4);
  std::memcpy(out_.data() + 4, &rank, 4);
  std::memcpy(out_.data() + 8, &ordinal_, 8);
  std::memcpy(out_.data() + kReduceHeaderBytes, data, bytes);
  const std::vector<ReceivedMessage> got =
      transport_.exchange(group_.peers, kReduceTag, out_, timeout_);
  own_.assign(data, data + n);
  // p0 + p1 + ... in rank order, on every rank alike.
  for (int r = 0; r < group_.n_ranks; ++r) {
    const float* part = r == group_.rank ? own_.data()
                                         : values_of(got[r < group_.rank ? r : r - 1], r, n);
    if (r == 0) {
      std::memcpy(data, part, bytes);
    } else {
      for (std::int64_t i = 0; i < n; ++i) data[i] += part[i];
    }
  }
  ++ordinal_;
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace herd::cluster
