#include "cli/bench_served.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "util/error.h"

namespace herd::cli {

using nlohmann::json;

std::vector<std::int32_t> bench_tokens(int n, int n_vocab, std::uint32_t seed) {
  std::vector<std::int32_t> ids(n);
  std::uint32_t x = seed;
  for (auto& id : ids) {
    x = x * 1664525u + 1013904223u;
    id = static_cast<std::int32_t>((x >> 8) % static_cast<std::uint32_t>(n_vocab));
  }
  return ids;
}

namespace {

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// A gauge from Prometheus text: the value on the line "<name> <value>".
double gauge(const std::string& text, const std::string& name) {
  const auto at = text.find("\n" + name + " ");
  if (at == std::string::npos) fail("GET /metrics has no {}: is this a herd node?", name);
  return std::atof(text.c_str() + at + name.size() + 2);
}

void complete(httplib::Client& client, const std::vector<std::int32_t>& prompt, int max_tokens) {
  const json body = {
      {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"ignore_eos", true}};
  auto r = client.Post("/v1/completions", body.dump(), "application/json");
  if (!r) fail("POST /v1/completions: no answer ({})", httplib::to_string(r.error()));
  if (r->status != 200)
    fail("POST /v1/completions: HTTP {}: {}", r->status, r->body.substr(0, 300));
}

}  // namespace

ServedSpeed measure_served(int api_port, const ServedBenchParams& p) {
  HERD_CHECK(p.n_vocab > 0 && p.reps > 0);
  httplib::Client client("127.0.0.1", api_port);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(3600, 0);
  // Warm-up: the first pass faults the mapped weights in on every stage.
  complete(client, bench_tokens(std::min(16, std::max(1, p.n_prompt)), p.n_vocab, 7), 2);
  std::vector<double> pp, tg;
  for (int rep = 0; rep < p.reps; ++rep) {
    // A new prompt that differs from the last one in its first token: nothing is reused.
    auto prompt = bench_tokens(std::max(1, p.n_prompt), p.n_vocab, 1000u + rep);
    prompt[0] = rep % p.n_vocab;
    complete(client, prompt, std::max(1, p.n_gen));
    auto m = client.Get("/metrics");
    if (!m || m->status != 200) fail("GET /metrics failed");
    const double pp_tps = gauge(m->body, "herd_prefill_tokens_per_second");
    const double tg_tps = gauge(m->body, "herd_decode_tokens_per_second");
    std::fprintf(stderr, "bench: run %d/%d: pp%d %.1f t/s, tg%d %.2f t/s\n", rep + 1, p.reps,
                 p.n_prompt, pp_tps, p.n_gen, tg_tps);
    if (p.n_prompt > 0) pp.push_back(pp_tps);
    if (p.n_gen > 1) tg.push_back(tg_tps);
  }
  ServedSpeed s;
  if (!pp.empty()) s.pp_tps = median_of(pp);
  if (!tg.empty()) s.tg_tps = median_of(tg);
  return s;
}

}  // namespace herd::cli
