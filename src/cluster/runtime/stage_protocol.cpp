#include "cluster/runtime/stage_protocol.h"

#include <bit>
#include <cstring>

#include "util/error.h"

namespace herd::cluster {

// Payloads are sent as the host's floats and ints; herd runs on little-endian machines only.
static_assert(std::endian::native == std::endian::little, "the stage protocol is little-endian");

namespace {

constexpr std::uint32_t kMagic = 0x32505348;  // "HSP2"
constexpr std::uint32_t kRunLogits = 1;
// More runs than this in one message is malformed (a batch has at most one per sequence).
constexpr std::uint32_t kMaxRuns = 1u << 16;
constexpr std::uint8_t kFlagAllLogits = 1;
constexpr std::uint8_t kFlagChecksum = 2;
constexpr std::uint8_t kFlagDecodeShaped = 4;

template <typename T>
void put(std::uint8_t* at, T value) {
  std::memcpy(at, &value, sizeof(T));
}

template <typename T>
T get(const std::uint8_t* at) {
  T value;
  std::memcpy(&value, at, sizeof(T));
  return value;
}

std::size_t element_bytes(PayloadKind kind) {
  switch (kind) {
    case PayloadKind::kNone:
      return 0;
    case PayloadKind::kTokens:
      return sizeof(std::int32_t);
    case PayloadKind::kHidden:
    case PayloadKind::kLogits:
      return sizeof(float);
    case PayloadKind::kText:
      return 1;
  }
  return 0;
}

bool known_op(std::uint8_t op) {
  return op >= 1 && op <= 8;
}
bool known_kind(std::uint8_t kind) {
  return kind <= 4;
}

// Payload size implied by the header, or -1 when rows/width are negative or overflow.
std::int64_t expected_bytes(const StageHeader& h) {
  if (h.n_rows < 0 || h.row_width < 0) return -1;
  const std::int64_t elements = std::int64_t(h.n_rows) * h.row_width;  // < 2^62: no overflow
  if (elements > static_cast<std::int64_t>(kMaxStagePayloadBytes)) return -1;
  return elements * static_cast<std::int64_t>(element_bytes(h.kind));
}

}  // namespace

const char* stage_op_name(StageOp op) {
  switch (op) {
    case StageOp::kForward:
      return "forward";
    case StageOp::kTruncate:
      return "truncate";
    case StageOp::kShutdown:
      return "shutdown";
    case StageOp::kLogits:
      return "logits";
    case StageOp::kError:
      return "error";
    case StageOp::kPing:
      return "ping";
    case StageOp::kPong:
      return "pong";
    case StageOp::kCopy:
      return "copy";
  }
  return "unknown";
}

std::uint32_t fnv1a(std::span<const std::uint8_t> bytes) {
  std::uint32_t hash = 2166136261u;  // FNV-1a 32-bit offset basis and prime
  for (std::uint8_t b : bytes) hash = (hash ^ b) * 16777619u;
  return hash;
}

void encode_stage_message(const StageHeader& h, std::span<const engine::BatchRun> runs,
                          std::span<const std::uint8_t> rows, std::vector<std::uint8_t>& out) {
  HERD_CHECK(expected_bytes(h) == static_cast<std::int64_t>(rows.size()));
  const std::size_t table = runs.size() * kRunEntryBytes;
  const std::size_t payload_bytes = table + rows.size();
  out.resize(kStageHeaderBytes + payload_bytes);
  std::uint8_t* p = out.data();
  put<std::uint32_t>(p + 0, kMagic);
  p[4] = static_cast<std::uint8_t>(h.op);
  p[5] = static_cast<std::uint8_t>(h.kind);
  p[6] = static_cast<std::uint8_t>((h.all_logits ? kFlagAllLogits : 0) |
                                   (h.checksum ? kFlagChecksum : 0) |
                                   (h.decode_shaped ? kFlagDecodeShaped : 0));
  p[7] = 0;
  put<std::uint64_t>(p + 8, h.request_id);
  put<std::int32_t>(p + 16, h.pos0);
  put<std::int32_t>(p + 20, h.n_tokens);
  put<std::int32_t>(p + 24, h.n_rows);
  put<std::int32_t>(p + 28, h.row_width);
  put<std::uint64_t>(p + 32, payload_bytes);
  put<std::uint32_t>(p + 44, static_cast<std::uint32_t>(runs.size()));
  put<std::int32_t>(p + 48, h.seq);
  put<std::int32_t>(p + 52, h.src_seq);
  std::uint8_t* q = p + kStageHeaderBytes;
  for (const engine::BatchRun& r : runs) {
    put<std::int32_t>(q + 0, r.seq);
    put<std::int32_t>(q + 4, r.pos0);
    put<std::int32_t>(q + 8, r.n_tokens);
    put<std::uint32_t>(q + 12, r.logits ? kRunLogits : 0);
    q += kRunEntryBytes;
  }
  if (!rows.empty()) std::memcpy(q, rows.data(), rows.size());
  const std::span<const std::uint8_t> payload(p + kStageHeaderBytes, payload_bytes);
  put<std::uint32_t>(p + 40, h.checksum ? fnv1a(payload) : 0);
}

void encode_stage_message(const StageHeader& h, std::span<const std::uint8_t> payload,
                          std::vector<std::uint8_t>& out) {
  encode_stage_message(h, {}, payload, out);
}

std::vector<std::uint8_t> encode_stage_message(const StageHeader& header,
                                               std::span<const std::uint8_t> payload) {
  std::vector<std::uint8_t> out;
  encode_stage_message(header, payload, out);
  return out;
}

StageMessage parse_stage_message(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < kStageHeaderBytes) {
    fail_format("stage message of {} bytes is shorter than its {}-byte header", bytes.size(),
                kStageHeaderBytes);
  }
  const std::uint8_t* p = bytes.data();
  if (get<std::uint32_t>(p) != kMagic) {
    fail_format(
        "not a stage protocol message (magic {:#010x}): a peer of another version or "
        "another program",
        get<std::uint32_t>(p));
  }
  if (!known_op(p[4])) fail_format("stage message has unknown op {}", p[4]);
  if (!known_kind(p[5])) fail_format("stage message has unknown payload kind {}", p[5]);
  if ((p[6] & ~(kFlagAllLogits | kFlagChecksum | kFlagDecodeShaped)) != 0) {
    fail_format("stage message has unknown flags {:#x}", p[6]);
  }
  StageMessage m;
  StageHeader& h = m.header;
  h.op = static_cast<StageOp>(p[4]);
  h.kind = static_cast<PayloadKind>(p[5]);
  h.all_logits = (p[6] & kFlagAllLogits) != 0;
  h.checksum = (p[6] & kFlagChecksum) != 0;
  h.decode_shaped = (p[6] & kFlagDecodeShaped) != 0;
  h.request_id = get<std::uint64_t>(p + 8);
  h.pos0 = get<std::int32_t>(p + 16);
  h.n_tokens = get<std::int32_t>(p + 20);
  h.n_rows = get<std::int32_t>(p + 24);
  h.row_width = get<std::int32_t>(p + 28);
  const std::uint64_t payload_bytes = get<std::uint64_t>(p + 32);
  const std::uint32_t checksum = get<std::uint32_t>(p + 40);
  const std::uint32_t n_runs = get<std::uint32_t>(p + 44);
  h.seq = get<std::int32_t>(p + 48);
  h.src_seq = get<std::int32_t>(p + 52);

  if (h.pos0 < 0 || h.n_tokens < 0) {
    fail_format("stage message has negative position {} or token count {}", h.pos0, h.n_tokens);
  }
  if (h.seq < 0 || h.src_seq < 0) {
    fail_format("stage message names a negative sequence ({} or {})", h.seq, h.src_seq);
  }
  if (payload_bytes > kMaxStagePayloadBytes) {
    fail_format("stage message claims a payload of {} bytes (limit {})", payload_bytes,
                kMaxStagePayloadBytes);
  }
  if (payload_bytes != bytes.size() - kStageHeaderBytes) {
    fail_format("stage message claims {} payload bytes but carries {}", payload_bytes,
                bytes.size() - kStageHeaderBytes);
  }
  if (n_runs > kMaxRuns || std::uint64_t(n_runs) * kRunEntryBytes > payload_bytes) {
    fail_format("stage message claims {} runs in a payload of {} bytes", n_runs, payload_bytes);
  }
  const std::uint64_t table = std::uint64_t(n_runs) * kRunEntryBytes;
  const std::int64_t expected = expected_bytes(h);
  if (expected < 0 || static_cast<std::uint64_t>(expected) != payload_bytes - table) {
    fail_format("stage message: {} rows of {} elements and {} runs do not make {} payload bytes",
                h.n_rows, h.row_width, n_runs, payload_bytes);
  }
  const std::span<const std::uint8_t> payload = bytes.subspan(kStageHeaderBytes);
  if (h.checksum && fnv1a(payload) != checksum) {
    fail_format(
        "stage message payload checksum mismatch ({:#010x} != {:#010x}): corrupted in "
        "transit",
        fnv1a(payload), checksum);
  }
  std::int64_t covered = 0;
  m.runs.resize(n_runs);
  for (std::uint32_t i = 0; i < n_runs; ++i) {
    const std::uint8_t* q = payload.data() + i * kRunEntryBytes;
    engine::BatchRun& r = m.runs[i];
    r.seq = get<std::int32_t>(q + 0);
    r.pos0 = get<std::int32_t>(q + 4);
    r.n_tokens = get<std::int32_t>(q + 8);
    const std::uint32_t flags = get<std::uint32_t>(q + 12);
    if (r.seq < 0 || r.pos0 < 0 || r.n_tokens <= 0 || (flags & ~kRunLogits) != 0) {
      fail_format("stage message run {} is malformed (sequence {}, pos0 {}, {} tokens, flags {:#x})",
                  i, r.seq, r.pos0, r.n_tokens, flags);
    }
    r.logits = (flags & kRunLogits) != 0;
    covered += r.n_tokens;
  }
  if (n_runs > 0 && covered != h.n_tokens) {
    fail_format("stage message runs cover {} tokens but the header says {}", covered, h.n_tokens);
  }
  m.payload = payload.subspan(table);
  return m;
}

std::span<const std::uint8_t> as_bytes(std::span<const float> values) {
  return {reinterpret_cast<const std::uint8_t*>(values.data()), values.size_bytes()};
}

std::span<const std::uint8_t> as_bytes(std::span<const std::int32_t> values) {
  return {reinterpret_cast<const std::uint8_t*>(values.data()), values.size_bytes()};
}

void copy_floats(std::span<const std::uint8_t> payload, std::vector<float>& out) {
  HERD_CHECK(payload.size() % sizeof(float) == 0);
  out.resize(payload.size() / sizeof(float));
  if (!payload.empty()) std::memcpy(out.data(), payload.data(), payload.size());
}

void copy_tokens(std::span<const std::uint8_t> payload, std::vector<std::int32_t>& out) {
  HERD_CHECK(payload.size() % sizeof(std::int32_t) == 0);
  out.resize(payload.size() / sizeof(std::int32_t));
  if (!payload.empty()) std::memcpy(out.data(), payload.data(), payload.size());
}

}  // namespace herd::cluster
