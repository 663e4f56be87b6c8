// herd bench --nodes: speed measured through a running node's API, the way a client sees it,
// so that one node and a cluster of N are measured by the same code path.
//
// Per repetition: POST /v1/completions with a prompt of n_prompt token ids (a different random
// prompt each time, so no prefix is reused from the previous request), max_tokens = n_gen,
// greedy, ignore_eos; then GET /metrics and read the generation's own figures:
//   herd_prefill_tokens_per_second  prompt tokens / time of the prefill (through every stage)
//   herd_decode_tokens_per_second   tokens after the first / time after the first token; each
//                                   token is one full trip through the pipeline and back, end to
//                                   end, sampling included.
#pragma once

#include <cstdint>
#include <vector>

namespace herd::cli {

// Deterministic pseudo-random ids in [0, n_vocab).
std::vector<std::int32_t> bench_tokens(int n, int n_vocab, std::uint32_t seed);

struct ServedBenchParams {
  int n_prompt = 512;
  int n_gen = 128;
  int reps = 3;
  int n_vocab = 0;
};

struct ServedSpeed {
  double pp_tps = 0;  // medians over the repetitions
  double tg_tps = 0;
};

// Measures the node whose API listens on 127.0.0.1:api_port (after one short warm-up request
// that pages the weights in). Throws herd::Error when a request fails.
ServedSpeed measure_served(int api_port, const ServedBenchParams& params);

}  // namespace herd::cli
