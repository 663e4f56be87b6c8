// The stage protocol's wire format: round trips, and untrusted bytes rejected with FormatError
// (never a crash or an out-of-bounds read).
#include "cluster/runtime/stage_protocol.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "util/error.h"

namespace herd::cluster {
namespace {

StageHeader hidden_header(int n_tokens, int n_embd) {
  StageHeader h;
  h.op = StageOp::kForward;
  h.kind = PayloadKind::kHidden;
  h.all_logits = true;
  h.request_id = 0x1122334455667788ull;
  h.pos0 = 17;
  h.n_tokens = n_tokens;
  h.n_rows = n_tokens;
  h.row_width = n_embd;
  return h;
}

TEST(StageProtocol, RoundTripKeepsHeaderAndPayload) {
  const std::vector<float> hidden = {1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, -7.0f};
  for (bool checksum : {false, true}) {
    StageHeader h = hidden_header(2, 3);
    h.checksum = checksum;
    const auto bytes = encode_stage_message(h, as_bytes(std::span<const float>(hidden)));
    EXPECT_EQ(bytes.size(), kStageHeaderBytes + hidden.size() * 4);
    const StageMessage m = parse_stage_message(bytes);
    EXPECT_EQ(m.header.op, StageOp::kForward);
    EXPECT_EQ(m.header.kind, PayloadKind::kHidden);
    EXPECT_TRUE(m.header.all_logits);
    EXPECT_EQ(m.header.checksum, checksum);
    EXPECT_EQ(m.header.request_id, h.request_id);
    EXPECT_EQ(m.header.pos0, 17);
    EXPECT_EQ(m.header.n_tokens, 2);
    EXPECT_EQ(m.header.n_rows, 2);
    EXPECT_EQ(m.header.row_width, 3);
    std::vector<float> back;
    copy_floats(m.payload, back);
    EXPECT_EQ(back, hidden);
  }
}

TEST(StageProtocol, RunTableRoundTripsAndIsChecked) {
  const std::vector<float> hidden(3 * 2, 0.5f);
  const std::vector<engine::BatchRun> runs = {{2, 40, 1, true}, {0, 7, 2, false}};
  StageHeader h = hidden_header(3, 2);
  h.checksum = true;
  std::vector<std::uint8_t> bytes;
  encode_stage_message(h, runs, as_bytes(std::span<const float>(hidden)), bytes);
  EXPECT_EQ(bytes.size(), kStageHeaderBytes + runs.size() * kRunEntryBytes + hidden.size() * 4);
  const StageMessage m = parse_stage_message(bytes);
  ASSERT_EQ(m.runs.size(), 2u);
  EXPECT_EQ(m.runs[0].seq, 2);
  EXPECT_EQ(m.runs[0].pos0, 40);
  EXPECT_TRUE(m.runs[0].logits);
  EXPECT_EQ(m.runs[1].n_tokens, 2);
  EXPECT_FALSE(m.runs[1].logits);
  EXPECT_EQ(m.payload.size(), hidden.size() * 4);

  // Runs that do not add up to n_tokens, an empty run, unknown flags: refused.
  auto corrupt = [&](std::size_t at, std::int32_t value) {
    StageHeader plain = hidden_header(3, 2);
    std::vector<std::uint8_t> b;
    encode_stage_message(plain, runs, as_bytes(std::span<const float>(hidden)), b);
    std::memcpy(b.data() + at, &value, sizeof value);
    return b;
  };
  const std::size_t table = kStageHeaderBytes;
  EXPECT_THROW(parse_stage_message(corrupt(table + 8, 2)), FormatError);       // 2 + 2 != 3
  EXPECT_THROW(parse_stage_message(corrupt(table + 8, 0)), FormatError);       // empty run
  EXPECT_THROW(parse_stage_message(corrupt(table + 12, 4)), FormatError);      // flags
  EXPECT_THROW(parse_stage_message(corrupt(table + 0, -1)), FormatError);      // sequence
  EXPECT_THROW(parse_stage_message(corrupt(44, 1000)), FormatError);           // run count
  // Truncate and copy name their sequences in the header.
  StageHeader copy;
  copy.op = StageOp::kCopy;
  copy.pos0 = 24;
  copy.seq = 3;
  copy.src_seq = 1;
  const StageMessage c = parse_stage_message(encode_stage_message(copy));
  EXPECT_EQ(c.header.op, StageOp::kCopy);
  EXPECT_EQ(c.header.seq, 3);
  EXPECT_EQ(c.header.src_seq, 1);
  EXPECT_EQ(c.header.pos0, 24);
}

TEST(StageProtocol, TokensAndEmptyMessagesRoundTrip) {
  const std::vector<std::int32_t> tokens = {1, 403, 511};
  StageHeader h;
  h.kind = PayloadKind::kTokens;
  h.n_tokens = h.n_rows = 3;
  h.row_width = 1;
  std::vector<std::int32_t> back;
  copy_tokens(parse_stage_message(encode_stage_message(h, as_bytes(std::span(tokens)))).payload,
              back);
  EXPECT_EQ(back, tokens);

  StageHeader ping;
  ping.op = StageOp::kPing;
  ping.request_id = 9;
  const StageMessage m = parse_stage_message(encode_stage_message(ping));
  EXPECT_EQ(m.header.op, StageOp::kPing);
  EXPECT_EQ(m.header.request_id, 9u);
  EXPECT_TRUE(m.payload.empty());
}

std::vector<std::uint8_t> valid_message() {
  const std::vector<float> hidden(8, 0.5f);
  StageHeader h = hidden_header(2, 4);
  h.checksum = true;
  return encode_stage_message(h, as_bytes(std::span<const float>(hidden)));
}

void expect_rejected(const std::vector<std::uint8_t>& bytes, const std::string& words) {
  try {
    parse_stage_message(bytes);
    FAIL() << "accepted; expected an error mentioning '" << words << "'";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

template <typename T>
void poke(std::vector<std::uint8_t>& bytes, std::size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

TEST(StageProtocol, RejectsMalformedHeaders) {
  auto bytes = valid_message();
  expect_rejected({bytes.begin(), bytes.begin() + 20}, "shorter than");
  auto bad = bytes;
  bad[0] ^= 0xff;
  expect_rejected(bad, "magic");
  bad = bytes;
  bad[4] = 99;
  expect_rejected(bad, "unknown op");
  bad = bytes;
  bad[5] = 42;
  expect_rejected(bad, "payload kind");
  bad = bytes;
  bad[6] = 0x80;
  expect_rejected(bad, "flags");
  bad = bytes;
  poke<std::int32_t>(bad, 16, -1);
  expect_rejected(bad, "negative");
}

TEST(StageProtocol, RejectsSizesThatDisagree) {
  auto bytes = valid_message();
  auto bad = bytes;
  bad.pop_back();  // one payload byte missing
  expect_rejected(bad, "carries");
  bad = bytes;
  poke<std::uint64_t>(bad, 32, std::uint64_t(1) << 40);
  expect_rejected(bad, "limit");
  bad = bytes;
  poke<std::int32_t>(bad, 28, 5);  // rows x width no longer makes the payload
  expect_rejected(bad, "do not make");
  bad = bytes;
  poke<std::int32_t>(bad, 24, 0x7fffffff);  // rows x width x 4 would overflow 64 bits
  poke<std::int32_t>(bad, 28, 0x7fffffff);
  expect_rejected(bad, "do not make");
  bad = bytes;
  poke<std::int32_t>(bad, 24, -2);
  expect_rejected(bad, "do not make");
}

TEST(StageProtocol, ChecksumCatchesCorruptedPayload) {
  auto bad = valid_message();
  bad[kStageHeaderBytes + 3] ^= 0x10;
  expect_rejected(bad, "checksum");
}

TEST(StageProtocol, RandomCorruptionNeverCrashes) {
  const auto good = valid_message();
  std::mt19937 rng(42);
  int rejected = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    auto bytes = good;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      bytes[rng() % bytes.size()] = static_cast<std::uint8_t>(rng());
    }
    if (rng() % 4 == 0) bytes.resize(rng() % (bytes.size() + 1));
    try {
      const StageMessage m = parse_stage_message(bytes);
      // Whatever is accepted is self-consistent.
      EXPECT_EQ(m.payload.size() + kStageHeaderBytes, bytes.size());
    } catch (const FormatError&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 15000);
}

}  // namespace
}  // namespace herd::cluster
