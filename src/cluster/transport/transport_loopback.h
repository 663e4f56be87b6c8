// An in-process Transport for tests: transports made from one LoopbackFabric reach each other
// through queues. Destroying a transport is its death: peers waiting on it get an error, as they
// would from a crashed machine. Thread-safe (each transport is meant for one thread, like
// UcxTransport, but several may run at once).
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>

#include "cluster/transport/transport.h"

namespace herd::cluster {

class LoopbackFabric {
 public:
  struct Mailbox {
    std::deque<ReceivedMessage> queue;
    bool alive = true;
  };

 private:
  friend class LoopbackTransport;
  std::mutex mutex_;
  std::condition_variable changed_;  // a message arrived or a transport died
  std::map<PeerId, Mailbox> mailboxes_;
  PeerId next_id_ = 1;
};

class LoopbackTransport final : public Transport {
 public:
  explicit LoopbackTransport(std::shared_ptr<LoopbackFabric> fabric);
  ~LoopbackTransport() override;
  LoopbackTransport(const LoopbackTransport&) = delete;
  LoopbackTransport& operator=(const LoopbackTransport&) = delete;

  PeerId self() const override { return id_; }
  std::vector<std::uint8_t> local_address() const override;
  PeerId connect(std::span<const std::uint8_t> address, const std::string& label) override;
  void disconnect(PeerId peer) override;
  void send(PeerId peer, Tag tag, std::span<const std::uint8_t> bytes, Millis timeout) override;
  std::optional<ReceivedMessage> try_receive(Tag tag, std::optional<PeerId> from,
                                             Millis timeout) override;
  std::optional<std::string> peer_failure(PeerId peer) const override;
  std::string peer_label(PeerId peer) const override;

 private:
  std::shared_ptr<LoopbackFabric> fabric_;
  PeerId id_;
  std::map<PeerId, std::string> labels_;  // connected peers; guarded by fabric_->mutex_
};

}  // namespace herd::cluster
