// The data plane's transport: reliable, ordered, tagged byte messages between peers. The
// activations of a pipeline (and later the partial sums of tensor parallelism) travel through
// it; it knows nothing about what the bytes mean.
//
// A transport is created first, its local_address() (an opaque blob) goes to the peers over the
// control plane, and each peer connect()s to the blobs it was given. Messages between one pair of
// peers with the same tag arrive in the order they were sent.
//
// Failure model: a peer that dies or stops answering is an event on the call that notices it — a
// herd::Error naming the peer — never an abort or an unbounded wait. Every blocking call takes a
// timeout.
//
// Implementations: UcxTransport (ucx_transport.h; shared memory, TCP, RDMA behind one API) and
// LoopbackTransport (transport_loopback.h; in-process, for tests).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace herd::cluster {

// A peer is named by the 32-bit id its transport picked at random when it was created (carried
// in its address blob), so a receiver knows who sent a message even without an endpoint back.
using PeerId = std::uint32_t;
// Separates kinds of traffic (stage protocol, all-reduce, ...) on one transport.
using Tag = std::uint32_t;
using Millis = std::chrono::milliseconds;

struct ReceivedMessage {
  PeerId from = 0;
  Tag tag = 0;
  std::vector<std::uint8_t> bytes;
};

class Transport {
 public:
  virtual ~Transport() = default;

  // This transport's own id, as peers see it in ReceivedMessage::from.
  virtual PeerId self() const = 0;
  // The blob a peer passes to connect() to reach this transport.
  virtual std::vector<std::uint8_t> local_address() const = 0;
  // Opens an endpoint to the transport whose local_address() is `address`. `label` names the
  // peer in error messages (e.g. "node 'b' (10.0.0.2:7002)"). Connecting again to a peer already
  // connected returns the same id. InvalidArgument for a malformed blob.
  virtual PeerId connect(std::span<const std::uint8_t> address, const std::string& label) = 0;
  // Closes the endpoint (flushing what was sent, for a bounded time).
  virtual void disconnect(PeerId peer) = 0;

  // Sends one message; returns when `bytes` may be reused. It may need the receiver to make
  // progress (UCX: the first message sets up the connection, large ones are fetched by the
  // receiver), so the receiver should be waiting in try_receive, as pipeline stages are.
  // herd::Error when the peer is not connected, has failed, or the send does not complete within
  // `timeout`.
  virtual void send(PeerId peer, Tag tag, std::span<const std::uint8_t> bytes, Millis timeout) = 0;

  // The next message with `tag` (from `from` when given), or nullopt when none arrives within
  // `timeout`. herd::Error when `from` is given and that peer has failed, or when a message
  // breaks off half-way.
  virtual std::optional<ReceivedMessage> try_receive(Tag tag, std::optional<PeerId> from,
                                                     Millis timeout) = 0;

  // Why the endpoint to `peer` failed (the peer died, the link broke), or nullopt while healthy.
  virtual std::optional<std::string> peer_failure(PeerId peer) const = 0;
  // The label given to connect(), or "peer <id>" for one never connected.
  virtual std::string peer_label(PeerId peer) const = 0;

  // try_receive, with a timeout being an error that names what was awaited.
  ReceivedMessage receive(Tag tag, std::optional<PeerId> from, Millis timeout);

  // Sends `bytes` to every peer and returns one message with `tag` from each, in `peers` order:
  // the all-to-all step of tensor parallelism's all-reduce. All ranks may call it at once: the
  // sends are under way while the receives wait, so a large message never waits for the other
  // side to finish its own send, and both directions of a link carry data together. Error naming
  // the peer that fails or sends nothing within `timeout`. This default sends, then receives,
  // which is right for transports whose send only queues (loopback).
  virtual std::vector<ReceivedMessage> exchange(std::span<const PeerId> peers, Tag tag,
                                                std::span<const std::uint8_t> bytes,
                                                Millis timeout);
};

// Tags in use. Kept here so two subsystems never pick the same one.
constexpr Tag kStageTag = 0x53544731;   // stage protocol (stage_protocol.h)
constexpr Tag kReduceTag = 0x52454431;  // tensor-parallel all-reduce (transport_reducer.h)

}  // namespace herd::cluster
