#include "cluster/transport/transport.h"

#include "util/error.h"

namespace herd::cluster {

ReceivedMessage Transport::receive(Tag tag, std::optional<PeerId> from, Millis timeout) {
  auto message = try_receive(tag, from, timeout);
  if (!message) {
    if (from) {
      fail("no message from {} within {} ms", peer_label(*from), timeout.count());
    }
    fail("no message (tag {:#x}) arrived within {} ms", tag, timeout.count());
  }
  return std::move(*message);
}

std::vector<ReceivedMessage> Transport::exchange(std::span<const PeerId> peers, Tag tag,
                                                 std::span<const std::uint8_t> bytes,
                                                 Millis timeout) {
  for (const PeerId p : peers) send(p, tag, bytes, timeout);
  std::vector<ReceivedMessage> out;
  for (const PeerId p : peers) out.push_back(receive(tag, p, timeout));
  return out;
}

}  // namespace herd::cluster
