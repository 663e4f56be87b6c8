// The stage protocol: what the coordinator and the stage servers of a pipeline say to each other
// over a Transport (tag kStageTag). One message = a fixed 56-byte header + a payload.
//
//   offset size  field
//   0      4     magic "HSP2" (0x32505348 little-endian)
//   4      1     op            (StageOp)
//   5      1     payload kind  (PayloadKind)
//   6      1     flags         (bit 0: all logits, bit 1: checksum present, bit 2: decode-shaped)
//   7      1     reserved, 0
//   8      8     request id    (coordinator's counter; replies carry the request's id)
//   16     4     pos0          (truncate: n_keep; copy: positions copied)
//   20     4     n_tokens      (forward: tokens of all runs together)
//   24     4     n_rows        (rows of the payload)
//   28     4     row width     (elements per row: 1 for tokens, n_embd, n_vocab)
//   32     8     payload bytes (run table + rows)
//   40     4     checksum      (FNV-1a of the payload when flag bit 1, else 0)
//   44     4     n_runs        (entries of the run table at the payload's start)
//   48     4     seq           (truncate: the sequence; copy: the destination)
//   52     4     src seq       (copy: the source)
//
// A forward's payload starts with its batch's run table (engine/batch.h), 16 bytes a run:
// sequence, pos0, n_tokens (i32 each) and flags (u32, bit 0: the run's last logits are wanted);
// the rows (tokens or hidden state) follow in run order. The reply of the last stage carries the
// same table before its logits rows.
// All integers little-endian; payload floats are IEEE f32 little-endian, token ids i32.
// Bytes from the network are untrusted: parse_stage_message checks every size and value and
// throws FormatError, never reads out of bounds.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/batch.h"

namespace herd::cluster {

enum class StageOp : std::uint8_t {
  kForward = 1,   // run n_tokens at pos0 (payload: tokens or hidden)
  kTruncate = 2,  // forget positions >= pos0; passed down the chain
  kShutdown = 3,  // stop serving; passed down the chain
  kLogits = 4,    // reply: logits of a forward (from the stage with the head)
  kError = 5,     // reply: a stage failed a request (payload: UTF-8 text)
  kPing = 6,      // liveness probe; answered with kPong to the sender
  kPong = 7,
  kCopy = 8,  // sequence seq's positions [0, pos0) become a copy of src_seq's; passed down
};

enum class PayloadKind : std::uint8_t {
  kNone = 0,
  kTokens = 1,
  kHidden = 2,
  kLogits = 3,
  kText = 4
};

const char* stage_op_name(StageOp op);

struct StageHeader {
  StageOp op = StageOp::kForward;
  PayloadKind kind = PayloadKind::kNone;
  bool all_logits = false;
  bool decode_shaped = false;  // engine::Batch::decode_shaped
  bool checksum = false;  // when encoding: compute one; when parsed: one was present and matched
  std::uint64_t request_id = 0;
  std::int32_t pos0 = 0;
  std::int32_t n_tokens = 0;
  std::int32_t n_rows = 0;
  std::int32_t row_width = 0;
  std::int32_t seq = 0;
  std::int32_t src_seq = 0;
};

constexpr std::size_t kStageHeaderBytes = 56;
constexpr std::size_t kRunEntryBytes = 16;
// Refuse payloads larger than this (a corrupt length must not become a huge allocation).
constexpr std::uint64_t kMaxStagePayloadBytes = std::uint64_t(1) << 32;

// Header + payload into `out` (resized). The payload size must match the header's rows and width
// (checked; a mismatch is a bug of ours).
void encode_stage_message(const StageHeader& header, std::span<const std::uint8_t> payload,
                          std::vector<std::uint8_t>& out);
// With a run table before the rows (forward, logits); header.n_tokens must be the runs' total.
void encode_stage_message(const StageHeader& header, std::span<const engine::BatchRun> runs,
                          std::span<const std::uint8_t> rows, std::vector<std::uint8_t>& out);
std::vector<std::uint8_t> encode_stage_message(const StageHeader& header,
                                               std::span<const std::uint8_t> payload = {});

struct StageMessage {
  StageHeader header;
  std::vector<engine::BatchRun> runs;     // the run table
  std::span<const std::uint8_t> payload;  // the rows: a view into the parsed bytes
};

// FormatError for anything malformed: short, bad magic, unknown op or kind, sizes that disagree,
// a run table whose runs are empty, negative or do not add up to n_tokens, a checksum that does
// not match.
StageMessage parse_stage_message(std::span<const std::uint8_t> bytes);

// Payload helpers. Copies: these are the costly steps, named so the cost shows.
std::span<const std::uint8_t> as_bytes(std::span<const float> values);
std::span<const std::uint8_t> as_bytes(std::span<const std::int32_t> values);
void copy_floats(std::span<const std::uint8_t> payload, std::vector<float>& out);
void copy_tokens(std::span<const std::uint8_t> payload, std::vector<std::int32_t>& out);

std::uint32_t fnv1a(std::span<const std::uint8_t> bytes);

}  // namespace herd::cluster
