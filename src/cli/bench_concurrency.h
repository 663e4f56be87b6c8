// herd bench --concurrency: many simultaneous streamed requests against a running node's API,
// timed the way clients see them (each request on its own connection and thread).
//
// Per configuration and repetition: `concurrency` greedy requests, each with its own random
// prompt of n_prompt token ids (nothing shared, so nothing is reused from a cache), max_tokens =
// n_gen, ignore_eos, "stream": true, sent at the same moment. Every streamed chunk is timed:
//   aggregate decode tokens/s = the streams' tokens after their first, together, over the time
//                               from the earliest first token to the latest last token;
//   TTFT                      = request sent -> its first chunk;
//   inter-token latency       = the gaps between one stream's chunks.
// With long_prompt > 0, one more request with a prompt that long is sent once every stream has
// its first token; its answer is compared with the same request sent alone afterwards (computed
// afresh). Greedy text of a random-weight model can part after a few tokens where two logits
// are within float rounding of each other: the prompt's KV cache was filled in other chunks
// beside other sequences, so sums ran in another order (tests/engine/batch_test.cpp checks the
// logits themselves against the prompt alone).
#pragma once

#include <cstdint>
#include <vector>

namespace herd::cli {

struct ConcurrencyParams {
  int concurrency = 1;
  int n_prompt = 64;
  int n_gen = 128;
  int n_vocab = 0;
  int long_prompt = 0;  // > 0: the extra long request described above
  std::uint32_t seed = 1;
};

struct ConcurrencyResult {
  double aggregate_tg_tps = 0;
  double ttft_ms_p50 = 0;
  double itl_ms_p50 = 0;
  double itl_ms_p99 = 0;
  int completed = 0;  // requests that got their whole answer
  // long_prompt > 0:
  double long_ttft_ms = 0;
  bool long_matches_alone = false;
  double long_same_prefix = 0;  // share of the alone answer's text that the answer starts with
};

// Throws herd::Error when a request fails or a stream ends early.
ConcurrencyResult measure_concurrency(int api_port, const ConcurrencyParams& params);

// The p-quantile (0..1) of values by linear interpolation; 0 when empty.
double quantile(std::vector<double> values, double p);

}  // namespace herd::cli
