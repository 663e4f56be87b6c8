#include "cluster/transport/transport_loopback.h"

#include <fmt/format.h>

#include "util/error.h"

namespace herd::cluster {

namespace {

constexpr std::size_t kAddressBytes = 8;
constexpr std::uint32_t kAddressMagic = 0x4c4f4f50;  // "LOOP"

std::uint32_t load_u32(const std::uint8_t* p) {
  return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 |
         std::uint32_t(p[3]) << 24;
}

void store_u32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

}  // namespace

LoopbackTransport::LoopbackTransport(std::shared_ptr<LoopbackFabric> fabric)
    : fabric_(std::move(fabric)) {
  HERD_CHECK(fabric_ != nullptr);
  std::lock_guard lock(fabric_->mutex_);
  id_ = fabric_->next_id_++;
  fabric_->mailboxes_[id_];
}

LoopbackTransport::~LoopbackTransport() {
  {
    std::lock_guard lock(fabric_->mutex_);
    auto& box = fabric_->mailboxes_[id_];
    box.alive = false;
    box.queue.clear();
  }
  fabric_->changed_.notify_all();
}

std::vector<std::uint8_t> LoopbackTransport::local_address() const {
  std::vector<std::uint8_t> address(kAddressBytes);
  store_u32(address.data(), kAddressMagic);
  store_u32(address.data() + 4, id_);
  return address;
}

PeerId LoopbackTransport::connect(std::span<const std::uint8_t> address, const std::string& label) {
  if (address.size() != kAddressBytes || load_u32(address.data()) != kAddressMagic) {
    fail_argument("the address of {} is not a loopback transport address ({} bytes)", label,
                  address.size());
  }
  const PeerId peer = load_u32(address.data() + 4);
  std::lock_guard lock(fabric_->mutex_);
  if (!fabric_->mailboxes_.count(peer)) {
    fail_argument("{} (loopback id {}) is not on this fabric", label, peer);
  }
  labels_[peer] = label;
  return peer;
}

void LoopbackTransport::disconnect(PeerId peer) {
  std::lock_guard lock(fabric_->mutex_);
  labels_.erase(peer);
}

void LoopbackTransport::send(PeerId peer, Tag tag, std::span<const std::uint8_t> bytes,
                             Millis /*timeout: a loopback send never waits*/) {
  {
    std::lock_guard lock(fabric_->mutex_);
    auto label = labels_.find(peer);
    if (label == labels_.end()) fail("cannot send to peer {}: not connected", peer);
    auto& box = fabric_->mailboxes_.at(peer);
    if (!box.alive) fail("cannot send to {}: it has stopped (transport closed)", label->second);
    box.queue.push_back(ReceivedMessage{id_, tag, {bytes.begin(), bytes.end()}});
  }
  fabric_->changed_.notify_all();
}

std::optional<ReceivedMessage> LoopbackTransport::try_receive(Tag tag, std::optional<PeerId> from,
                                                              Millis timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(fabric_->mutex_);
  auto& box = fabric_->mailboxes_.at(id_);
  auto take = [&]() -> std::optional<ReceivedMessage> {
    for (auto it = box.queue.begin(); it != box.queue.end(); ++it) {
      if (it->tag == tag && (!from || it->from == *from)) {
        ReceivedMessage message = std::move(*it);
        box.queue.erase(it);
        return message;
      }
    }
    return std::nullopt;
  };
  for (;;) {
    if (auto message = take()) return message;
    if (from) {
      auto peer = fabric_->mailboxes_.find(*from);
      if (peer == fabric_->mailboxes_.end() || !peer->second.alive) {
        auto label = labels_.find(*from);
        fail("{} has stopped (transport closed)",
             label != labels_.end() ? label->second : fmt::format("peer {}", *from));
      }
    }
    // One last look after the deadline: the message may have come with the timeout.
    if (fabric_->changed_.wait_until(lock, deadline) == std::cv_status::timeout) return take();
  }
}

std::optional<std::string> LoopbackTransport::peer_failure(PeerId peer) const {
  std::lock_guard lock(fabric_->mutex_);
  auto it = fabric_->mailboxes_.find(peer);
  if (it == fabric_->mailboxes_.end()) return "unknown peer";
  if (!it->second.alive) return "transport closed";
  return std::nullopt;
}

std::string LoopbackTransport::peer_label(PeerId peer) const {
  std::lock_guard lock(fabric_->mutex_);
  auto it = labels_.find(peer);
  return it != labels_.end() ? it->second : fmt::format("peer {}", peer);
}

}  // namespace herd::cluster
