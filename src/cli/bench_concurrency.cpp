#include "cli/bench_concurrency.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "cli/bench_served.h"
#include "util/error.h"

namespace herd::cli {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double quantile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double at = p * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(at);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (at - static_cast<double>(lo));
}

namespace {

struct Stream {
  Clock::time_point sent;
  std::vector<Clock::time_point> chunks;  // arrival of each chunk with text
  std::string text;
  int completion_tokens = 0;
  std::string error;
};

// Sends one streamed completion and times its chunks.
void stream_completion(int port, const std::vector<std::int32_t>& prompt, int max_tokens,
                       Stream& s, bool cache_prompt = true) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(10, 0);
  client.set_read_timeout(3600, 0);
  const json body = {{"prompt", prompt},     {"max_tokens", max_tokens},
                     {"temperature", 0},     {"ignore_eos", true},
                     {"stream", true},       {"stream_options", {{"include_usage", true}}},
                     {"cache_prompt", cache_prompt}};
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  std::string pending;
  req.content_receiver = [&](const char* data, std::size_t n, std::uint64_t, std::uint64_t) {
    const Clock::time_point now = Clock::now();
    pending.append(data, n);
    for (std::size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
      std::string event = pending.substr(0, end);
      pending.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0) continue;
      event.erase(0, 6);
      if (event == "[DONE]") continue;
      const json j = json::parse(event, nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("error")) {
        s.error = j["error"].value("message", "error");
        continue;
      }
      if (j.contains("usage") && j["usage"].is_object())
        s.completion_tokens = j["usage"].value("completion_tokens", 0);
      if (j.contains("choices") && !j["choices"].empty()) {
        const std::string piece = j["choices"][0].value("text", "");
        if (!piece.empty()) {
          s.text += piece;
          s.chunks.push_back(now);
        }
      }
    }
    return true;
  };
  s.sent = Clock::now();
  auto result = client.send(req);
  if (!result) {
    s.error = "no answer (" + httplib::to_string(result.error()) + ")";
  } else if (result->status != 200) {
    s.error = "HTTP " + std::to_string(result->status);
  }
}

double ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

}  // namespace

ConcurrencyResult measure_concurrency(int port, const ConcurrencyParams& p) {
  HERD_CHECK(p.n_vocab > 0 && p.concurrency > 0);
  const int c = p.concurrency;
  std::vector<Stream> streams(c);
  std::vector<std::thread> threads;
  std::vector<std::vector<std::int32_t>> prompts;
  for (int i = 0; i < c; ++i) {
    auto prompt = bench_tokens(std::max(1, p.n_prompt), p.n_vocab, p.seed * 7919u + i);
    prompt[0] = (static_cast<int>(p.seed) * 31 + i) % p.n_vocab;  // no two share a first token
    prompts.push_back(std::move(prompt));
  }
  for (int i = 0; i < c; ++i) {
    threads.emplace_back([&, i] { stream_completion(port, prompts[i], p.n_gen, streams[i]); });
  }
  Stream long_stream;
  std::vector<std::int32_t> long_prompt;
  std::thread long_thread;
  if (p.long_prompt > 0) {
    long_prompt = bench_tokens(p.long_prompt, p.n_vocab, p.seed * 104729u + 17u);
    long_thread = std::thread([&] {
      // Once every stream decodes (its first chunk arrived), or after 60 s.
      const auto until = Clock::now() + std::chrono::seconds(60);
      for (;;) {
        bool all = true;
        for (const Stream& s : streams) all = all && !s.chunks.empty();
        if (all || Clock::now() > until) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      stream_completion(port, long_prompt, 16, long_stream);
    });
  }
  for (auto& t : threads) t.join();
  if (long_thread.joinable()) long_thread.join();

  ConcurrencyResult r;
  Clock::time_point first_token = Clock::time_point::max();
  Clock::time_point last_token = Clock::time_point::min();
  std::vector<double> ttft, gaps;
  double decode_tokens = 0;
  for (const Stream& s : streams) {
    if (!s.error.empty()) fail("a benchmark request failed: {}", s.error);
    if (s.chunks.empty()) fail("a benchmark request streamed no text");
    ++r.completed;
    ttft.push_back(ms(s.chunks.front() - s.sent));
    for (std::size_t i = 1; i < s.chunks.size(); ++i) gaps.push_back(ms(s.chunks[i] - s.chunks[i - 1]));
    first_token = std::min(first_token, s.chunks.front());
    last_token = std::max(last_token, s.chunks.back());
    // Tokens after the first: from usage (a chunk may carry more than one token when a token
    // ends in the middle of a UTF-8 character).
    const int tokens = s.completion_tokens > 0 ? s.completion_tokens : static_cast<int>(s.chunks.size());
    decode_tokens += tokens - 1;
  }
  double window_s = std::chrono::duration<double>(last_token - first_token).count();
  if (window_s <= 0) {
    // Every token arrived in one read (a tiny model answers faster than the socket delivers):
    // time the whole requests instead, prompt included, and count every token.
    Clock::time_point sent = Clock::time_point::max();
    for (const Stream& s : streams) sent = std::min(sent, s.sent);
    window_s = std::chrono::duration<double>(last_token - sent).count();
    decode_tokens += static_cast<double>(streams.size());
  }
  r.aggregate_tg_tps = window_s > 0 ? decode_tokens / window_s : 0;
  r.ttft_ms_p50 = quantile(ttft, 0.5);
  r.itl_ms_p50 = quantile(gaps, 0.5);
  r.itl_ms_p99 = quantile(gaps, 0.99);
  if (p.long_prompt > 0) {
    if (!long_stream.error.empty()) fail("the long-prompt request failed: {}", long_stream.error);
    if (!long_stream.chunks.empty()) r.long_ttft_ms = ms(long_stream.chunks.front() - long_stream.sent);
    Stream alone;
    // Computed afresh (cache_prompt false), not from the KV the batched run left behind.
    stream_completion(port, long_prompt, 16, alone, /*cache_prompt=*/false);
    if (!alone.error.empty()) fail("the long-prompt request alone failed: {}", alone.error);
    r.long_matches_alone = !alone.text.empty() && alone.text == long_stream.text;
    std::size_t same = 0;
    while (same < alone.text.size() && same < long_stream.text.size() &&
           alone.text[same] == long_stream.text[same])
      ++same;
    r.long_same_prefix = alone.text.empty() ? 0.0 : static_cast<double>(same) / alone.text.size();
  }
  return r;
}

}  // namespace herd::cli
