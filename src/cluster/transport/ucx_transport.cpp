#include "cluster/transport/ucx_transport.h"

#include <poll.h>
#include <ucp/api/ucp.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include "util/error.h"
#include "util/log.h"

namespace herd::cluster {

// Completion of one request. Heap-allocated: when we give up on a request (timeout) the callback
// may still run later, and then frees the record itself.
struct UcxTransport::Completion {
  ucs_status_t status = UCS_INPROGRESS;
  std::size_t length = 0;
  bool abandoned = false;
};

namespace {

using Completion = UcxTransport::Completion;

constexpr std::uint32_t kAddressMagic = 0x58445248;  // "HRDX"
constexpr std::uint32_t kAddressVersion = 1;
constexpr std::size_t kAddressHeader = 12;  // magic, version, node id (u32 LE each)
constexpr std::uint64_t kUserTagMask = 0xffffffffull;
// Worker progress calls between two looks at the clock and the awaited condition.
constexpr int kMaxProgressPerCheck = 64;

std::uint32_t load_u32(const std::uint8_t* p) {
  return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 |
         std::uint32_t(p[3]) << 24;
}

void store_u32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

void check_ucs(ucs_status_t status, const char* what) {
  if (status != UCS_OK) fail("UCX: {} failed: {}", what, ucs_status_string(status));
}

void complete(Completion* c, ucs_status_t status) {
  if (c->abandoned) {
    delete c;
    return;
  }
  c->status = status;
}

void on_send(void* /*request*/, ucs_status_t status, void* user) {
  complete(static_cast<Completion*>(user), status);
}

void on_receive(void* /*request*/, ucs_status_t status, const ucp_tag_recv_info_t* info,
                void* user) {
  auto* c = static_cast<Completion*>(user);
  if (!c->abandoned && info != nullptr) c->length = info->length;
  complete(c, status);
}

void on_close(void* /*request*/, ucs_status_t status, void* user) {
  complete(static_cast<Completion*>(user), status);
}

}  // namespace

struct UcxTransport::Handles {
  ucp_context_h context = nullptr;
  ucp_worker_h worker = nullptr;
  int event_fd = -1;
};

struct UcxTransport::Peer {
  PeerId id = 0;
  std::string label;
  ucp_ep_h ep = nullptr;
  std::optional<std::string> failure;
};

namespace {

void on_endpoint_error(void* arg, ucp_ep_h /*ep*/, ucs_status_t status) {
  auto* peer = static_cast<UcxTransport::Peer*>(arg);
  if (!peer->failure) {
    peer->failure = fmt::format("connection lost ({})", ucs_status_string(status));
    log::warn("transport: {}: {}", peer->label, *peer->failure);
  }
}

}  // namespace

UcxTransport::UcxTransport(UcxOptions options)
    : options_(std::move(options)), ucx_(std::make_unique<Handles>()) {
  ucp_config_t* config = nullptr;
  check_ucs(ucp_config_read(nullptr, nullptr, &config), "reading the configuration");
  if (!options_.tls.empty() && std::getenv("UCX_TLS") == nullptr) {
    ucp_config_modify(config, "TLS", options_.tls.c_str());
  }
  if (!options_.net_devices.empty() && std::getenv("UCX_NET_DEVICES") == nullptr) {
    ucp_config_modify(config, "NET_DEVICES", options_.net_devices.c_str());
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES;
  params.features = UCP_FEATURE_TAG | UCP_FEATURE_WAKEUP;
  const ucs_status_t init = ucp_init(&params, config, &ucx_->context);
  ucp_config_release(config);
  check_ucs(init, "ucp_init (check UCX_TLS / UCX_NET_DEVICES)");

  ucp_worker_params_t worker_params{};
  worker_params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  worker_params.thread_mode = UCS_THREAD_MODE_SINGLE;
  if (ucs_status_t s = ucp_worker_create(ucx_->context, &worker_params, &ucx_->worker);
      s != UCS_OK) {
    ucp_cleanup(ucx_->context);
    check_ucs(s, "creating a worker");
  }
  ucp_address_t* worker_address = nullptr;
  std::size_t worker_address_length = 0;
  ucs_status_t s = ucp_worker_get_address(ucx_->worker, &worker_address, &worker_address_length);
  if (s == UCS_OK) s = ucp_worker_get_efd(ucx_->worker, &ucx_->event_fd);
  if (s != UCS_OK) {
    ucp_worker_destroy(ucx_->worker);
    ucp_cleanup(ucx_->context);
    check_ucs(s, "reading the worker address");
  }
  std::random_device random;
  do {
    self_ = random();
  } while (self_ == 0);
  address_.resize(kAddressHeader + worker_address_length);
  store_u32(address_.data(), kAddressMagic);
  store_u32(address_.data() + 4, kAddressVersion);
  store_u32(address_.data() + 8, self_);
  std::memcpy(address_.data() + kAddressHeader, worker_address, worker_address_length);
  ucp_worker_release_address(ucx_->worker, worker_address);
}

UcxTransport::~UcxTransport() {
  for (auto& [id, peer] : peers_) close_endpoint(*peer, peer->failure.has_value());
  peers_.clear();
  ucp_worker_destroy(ucx_->worker);
  ucp_cleanup(ucx_->context);
}

template <typename Done>
bool UcxTransport::progress_until(Done&& done, Clock::time_point deadline) {
  const auto spin_until = Clock::now() + options_.spin;
  for (;;) {
    // Drain, but boundedly: a worker whose progress never reports 0 (a peer streaming without
    // pause, an endpoint retrying a connection) must not keep us from the deadline check below.
    for (int i = 0; i < kMaxProgressPerCheck && ucp_worker_progress(ucx_->worker) != 0; ++i) {
    }
    if (done()) return true;
    const auto now = Clock::now();
    if (now >= deadline) return false;
    if (now < spin_until) {
      // Give the core away between polls: on a loaded machine the peer we wait for (often a
      // thread of this very process) may need exactly this core to make its progress.
      std::this_thread::yield();
      continue;
    }
    // Sleep until the worker has an event (or 100 ms, to re-check the deadline and failures).
    const ucs_status_t armed = ucp_worker_arm(ucx_->worker);
    if (armed == UCS_ERR_BUSY) continue;
    check_ucs(armed, "arming the worker");
    const auto left = std::chrono::duration_cast<Millis>(deadline - now).count() + 1;
    pollfd fd{ucx_->event_fd, POLLIN, 0};
    ::poll(&fd, 1, static_cast<int>(std::min<long long>(left, 100)));
  }
}

PeerId UcxTransport::connect(std::span<const std::uint8_t> address, const std::string& label) {
  if (address.size() <= kAddressHeader || load_u32(address.data()) != kAddressMagic) {
    fail_argument("the address given for {} is not a herd UCX address ({} bytes)", label,
                  address.size());
  }
  if (load_u32(address.data() + 4) != kAddressVersion) {
    fail_argument(
        "the address of {} has version {} but this herd speaks version {}: upgrade "
        "both nodes to the same release",
        label, load_u32(address.data() + 4), kAddressVersion);
  }
  const PeerId id = load_u32(address.data() + 8);
  if (auto it = peers_.find(id); it != peers_.end()) {
    if (!it->second->failure) return id;
    close_endpoint(*it->second, true);  // reconnect after a failure
    peers_.erase(it);
  }
  auto peer = std::make_unique<Peer>();
  peer->id = id;
  peer->label = label;
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                      UCP_EP_PARAM_FIELD_ERR_HANDLER;
  params.address = reinterpret_cast<const ucp_address_t*>(address.data() + kAddressHeader);
  params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  params.err_handler.cb = on_endpoint_error;
  params.err_handler.arg = peer.get();
  const ucs_status_t s = ucp_ep_create(ucx_->worker, &params, &peer->ep);
  if (s != UCS_OK) fail("cannot open an endpoint to {}: {}", label, ucs_status_string(s));
  peers_[id] = std::move(peer);
  return id;
}

// Waits (bounded) for `request` of a flush or close; frees it.
void UcxTransport::finish_request(ucs_status_ptr_t request, Completion* c, const Peer& peer,
                                  const char* what) {
  if (request == nullptr || UCS_PTR_IS_ERR(request)) {
    delete c;
    return;
  }
  const bool done = progress_until([&] { return c->status != UCS_INPROGRESS; },
                                   Clock::now() + options_.close_timeout);
  if (done) {
    delete c;
  } else {
    log::info("transport: {} {} did not finish within {} ms", what, peer.label,
              options_.close_timeout.count());
    c->abandoned = true;
  }
  ucp_request_free(request);
}

// A graceful UCX close waits for the peer to answer, which a peer that is shutting down too may
// never do; so flush what we sent (local completion) and then close by force. The peer sees the
// connection drop, which is what happened.
void UcxTransport::close_endpoint(Peer& peer, bool failed) {
  if (peer.ep == nullptr) return;
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.send = on_close;
  if (!failed) {
    auto* c = new Completion;
    param.user_data = c;
    finish_request(ucp_ep_flush_nbx(peer.ep, &param), c, peer, "flushing the endpoint to");
  }
  auto* c = new Completion;
  param.user_data = c;
  param.op_attr_mask |= UCP_OP_ATTR_FIELD_FLAGS;
  param.flags = UCP_EP_CLOSE_FLAG_FORCE;
  ucs_status_ptr_t request = ucp_ep_close_nbx(peer.ep, &param);
  peer.ep = nullptr;
  finish_request(request, c, peer, "closing the endpoint to");
}

void UcxTransport::disconnect(PeerId id) {
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  close_endpoint(*it->second, it->second->failure.has_value());
  peers_.erase(it);
}

UcxTransport::Peer& UcxTransport::connected(PeerId id, const char* what) {
  auto it = peers_.find(id);
  if (it == peers_.end()) fail("cannot {} peer {}: not connected", what, id);
  Peer& peer = *it->second;
  if (peer.failure) fail("cannot {} {}: {}", what, peer.label, *peer.failure);
  return peer;
}

UcxTransport::PendingSend UcxTransport::start_send(PeerId id, Tag tag,
                                                  std::span<const std::uint8_t> bytes) {
  Peer& peer = connected(id, "send to");
  auto* c = new Completion;
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.send = on_send;
  param.user_data = c;
  const ucp_tag_t ucx_tag = std::uint64_t(self_) << 32 | tag;
  ucs_status_ptr_t request = ucp_tag_send_nbx(peer.ep, bytes.data(), bytes.size(), ucx_tag, &param);
  if (request == nullptr) {  // completed in place
    delete c;
    return {&peer, nullptr, nullptr, bytes.size()};
  }
  if (UCS_PTR_IS_ERR(request)) {
    delete c;
    fail("sending {} bytes to {} failed: {}", bytes.size(), peer.label,
         ucs_status_string(UCS_PTR_STATUS(request)));
  }
  return {&peer, c, request, bytes.size()};
}

void UcxTransport::finish_send(PendingSend& send, Clock::time_point deadline, Millis timeout) {
  if (send.request == nullptr) return;
  Peer& peer = *send.peer;
  Completion* c = send.completion;
  void* request = send.request;
  send.request = nullptr;
  const bool done =
      progress_until([&] { return c->status != UCS_INPROGRESS || peer.failure; }, deadline);
  if (done && c->status != UCS_INPROGRESS) {
    const ucs_status_t status = c->status;
    delete c;
    ucp_request_free(request);
    if (status != UCS_OK) {
      fail("sending {} bytes to {} failed: {}", send.size, peer.label, ucs_status_string(status));
    }
    return;
  }
  // The peer failed or did not take the message in time: the endpoint is unusable from here on
  // (a half-sent message cannot be withdrawn), so close it; the request then completes.
  if (!peer.failure) {
    peer.failure =
        fmt::format("a {}-byte send did not complete within {} ms", send.size, timeout.count());
  }
  const std::string why = *peer.failure;
  c->abandoned = true;
  ucp_request_free(request);
  close_endpoint(peer, true);
  fail("sending {} bytes to {} failed: {}", send.size, peer.label, why);
}

void UcxTransport::send(PeerId id, Tag tag, std::span<const std::uint8_t> bytes, Millis timeout) {
  PendingSend pending = start_send(id, tag, bytes);
  finish_send(pending, Clock::now() + timeout, timeout);
}

std::vector<ReceivedMessage> UcxTransport::exchange(std::span<const PeerId> peers, Tag tag,
                                                    std::span<const std::uint8_t> bytes,
                                                    Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  std::vector<PendingSend> sends;
  std::vector<ReceivedMessage> out;
  try {
    for (const PeerId p : peers) sends.push_back(start_send(p, tag, bytes));
    for (const PeerId p : peers) {
      const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
      out.push_back(receive(tag, p, std::max(left, Millis(0))));
    }
    for (auto& s : sends) finish_send(s, deadline, timeout);
  } catch (...) {
    // Sends still under way refer to `bytes`: let them finish or fail before it goes away.
    for (auto& s : sends) {
      try {
        finish_send(s, Clock::now() + options_.close_timeout, options_.close_timeout);
      } catch (const Error&) {
      }
    }
    throw;
  }
  return out;
}

std::optional<ReceivedMessage> UcxTransport::try_receive(Tag tag, std::optional<PeerId> from,
                                                         Millis timeout) {
  const Peer* source = nullptr;
  if (from) {
    auto it = peers_.find(*from);
    if (it != peers_.end()) source = it->second.get();
  }
  const ucp_tag_t tag_value = (from ? std::uint64_t(*from) << 32 : 0) | tag;
  const ucp_tag_t tag_mask = from ? ~ucp_tag_t(0) : kUserTagMask;
  const auto deadline = Clock::now() + timeout;

  ucp_tag_message_h message = nullptr;
  ucp_tag_recv_info_t info{};
  auto arrived = [&] {
    message = ucp_tag_probe_nb(ucx_->worker, tag_value, tag_mask, 1, &info);
    return message != nullptr || (source != nullptr && source->failure);
  };
  if (!progress_until(arrived, deadline)) return std::nullopt;
  if (message == nullptr) fail("{} has failed: {}", source->label, *source->failure);

  ReceivedMessage received;
  received.from = static_cast<PeerId>(info.sender_tag >> 32);
  received.tag = static_cast<Tag>(info.sender_tag & kUserTagMask);
  received.bytes.resize(info.length);
  std::uint8_t empty = 0;
  auto* c = new Completion;
  ucp_request_param_t param{};
  param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  param.cb.recv = on_receive;
  param.user_data = c;
  void* buffer = info.length ? static_cast<void*>(received.bytes.data()) : &empty;
  ucs_status_ptr_t request =
      ucp_tag_msg_recv_nbx(ucx_->worker, buffer, info.length, message, &param);
  if (UCS_PTR_IS_ERR(request)) {
    delete c;
    fail("receiving {} bytes from {} failed: {}", info.length, peer_label(received.from),
         ucs_status_string(UCS_PTR_STATUS(request)));
  }
  if (request == nullptr) {
    delete c;
    return received;
  }
  // The message has begun to arrive; a large one is fetched now (rendezvous). Give it until the
  // deadline, but at least a second, since we already took it off the queue.
  const auto fetch_deadline = std::max(deadline, Clock::now() + std::chrono::seconds(1));
  const bool done = progress_until([&] { return c->status != UCS_INPROGRESS; }, fetch_deadline);
  if (!done) {
    ucp_request_cancel(ucx_->worker, request);
    progress_until([&] { return c->status != UCS_INPROGRESS; },
                   Clock::now() + std::chrono::milliseconds(100));
  }
  const ucs_status_t status = c->status;
  if (status == UCS_INPROGRESS) {
    c->abandoned = true;
  } else {
    delete c;
  }
  ucp_request_free(request);
  if (status != UCS_OK) {
    fail("a {}-byte message from {} broke off: {}", info.length, peer_label(received.from),
         status == UCS_INPROGRESS ? "timed out" : ucs_status_string(status));
  }
  return received;
}

std::optional<std::string> UcxTransport::peer_failure(PeerId id) const {
  auto it = peers_.find(id);
  if (it == peers_.end()) return "not connected";
  return it->second->failure;
}

std::string UcxTransport::peer_label(PeerId id) const {
  auto it = peers_.find(id);
  return it != peers_.end() ? it->second->label : fmt::format("peer {:08x}", id);
}

std::string UcxTransport::describe_lanes(PeerId id) const {
  auto it = peers_.find(id);
  if (it == peers_.end() || it->second->ep == nullptr) return "not connected";
  char* text = nullptr;
  std::size_t size = 0;
  FILE* stream = open_memstream(&text, &size);
  if (stream == nullptr) return "unknown";
  ucp_ep_print_info(it->second->ep, stream);
  std::fclose(stream);
  std::string out(text, size);
  std::free(text);
  return out;
}

}  // namespace herd::cluster
