// Transport over UCX (libucx 1.13, the ucp tag API): shared memory between processes of one
// machine, TCP between machines, RDMA where the hardware has it — UCX picks per peer.
//
// Address: our 12-byte header (magic, version, node id) + the ucp worker address, exchanged over
// the control plane. Endpoints use UCP_ERR_HANDLING_MODE_PEER, so a dead peer surfaces as an
// endpoint error (a closed TCP connection is seen at once; shared memory relies on UCX keepalive)
// and every wait is bounded by its timeout as well.
//
// Tags: the 64-bit UCX tag is (sender id << 32 | Tag), so a receive can select a sender and the
// receiver learns who sent a message without an endpoint back.
//
// Waiting: spin on ucp_worker_progress for `spin` (yielding the core between polls, and looking at
// the clock at least every 64 progress calls), then ucp_worker_arm + poll() on the worker's
// event fd, so an idle node sleeps. Waking from the fd costs ~200 us here against ~18 us for a
// spinning round trip (16 KiB, 127.0.0.1; see src/cluster/README.md), hence a 5 ms spin.
//
// Not thread-safe: one thread uses a transport (UCS_THREAD_MODE_SINGLE).
#pragma once

#include <map>
#include <memory>

#include "cluster/transport/transport.h"

namespace herd::cluster {

struct UcxOptions {
  // UCX transports when the environment sets no UCX_TLS (UCX_* variables always win).
  // Default "tcp": on 127.0.0.1 it is as fast as shared memory for our message sizes and is the
  // only choice that notices a dead peer immediately (see src/cluster/README.md).
  std::string tls = "tcp";
  // Network devices when the environment sets no UCX_NET_DEVICES ("" = UCX's choice: all).
  std::string net_devices;
  std::chrono::microseconds spin{5000};
  // How long disconnect()/the destructor wait for sent data to be flushed.
  Millis close_timeout{250};
};

class UcxTransport final : public Transport {
 public:
  explicit UcxTransport(UcxOptions options = {});
  ~UcxTransport() override;
  UcxTransport(const UcxTransport&) = delete;
  UcxTransport& operator=(const UcxTransport&) = delete;

  PeerId self() const override { return self_; }
  std::vector<std::uint8_t> local_address() const override { return address_; }
  PeerId connect(std::span<const std::uint8_t> address, const std::string& label) override;
  void disconnect(PeerId peer) override;
  void send(PeerId peer, Tag tag, std::span<const std::uint8_t> bytes, Millis timeout) override;
  std::optional<ReceivedMessage> try_receive(Tag tag, std::optional<PeerId> from,
                                             Millis timeout) override;
  // Starts every send, receives from each peer while they progress, then finishes the sends.
  std::vector<ReceivedMessage> exchange(std::span<const PeerId> peers, Tag tag,
                                        std::span<const std::uint8_t> bytes,
                                        Millis timeout) override;
  std::optional<std::string> peer_failure(PeerId peer) const override;
  std::string peer_label(PeerId peer) const override;

  // The UCX transports in use to `peer` (e.g. "tcp/lo"), for logs and the README's measurements.
  std::string describe_lanes(PeerId peer) const;

  // Public only for the C callbacks in the .cpp.
  struct Peer;        // one endpoint
  struct Completion;  // one request's outcome

 private:
  using Clock = std::chrono::steady_clock;
  // Progresses the worker until done() or the deadline; false on timeout.
  template <typename Done>
  bool progress_until(Done&& done, Clock::time_point deadline);
  void close_endpoint(Peer& peer, bool failed);
  void finish_request(void* request, Completion* c, const Peer& peer, const char* what);
  Peer& connected(PeerId peer, const char* what);
  // A send under way: request null when it completed in place.
  struct PendingSend {
    Peer* peer = nullptr;
    Completion* completion = nullptr;
    void* request = nullptr;
    std::size_t size = 0;
  };
  PendingSend start_send(PeerId peer, Tag tag, std::span<const std::uint8_t> bytes);
  // Progresses until the send completes; Error (and the endpoint closed) when the peer fails
  // or it does not complete by `deadline`.
  void finish_send(PendingSend& send, Clock::time_point deadline, Millis timeout);

  UcxOptions options_;
  struct Handles;
  std::unique_ptr<Handles> ucx_;
  PeerId self_ = 0;
  std::vector<std::uint8_t> address_;
  std::map<PeerId, std::unique_ptr<Peer>> peers_;
};

}  // namespace herd::cluster
