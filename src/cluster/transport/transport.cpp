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

}  // namespace herd::cluster
