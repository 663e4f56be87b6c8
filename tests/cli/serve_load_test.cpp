// `herd serve` under load, as clients meet it: many at once on real connections, clients that
// go away, and the server still serving afterwards. Every child is killed by PID at the end.
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/process_cluster.h"
#include "support/test_data.h"

namespace herd::testing {
namespace {

using nlohmann::json;

// A gauge or counter from /metrics ("name value" on its own line); -1 when absent.
double metric(int port, const std::string& name) {
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/metrics");
  if (!r || r->status != 200) return -1;
  const auto at = r->body.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::atof(r->body.c_str() + at + name.size() + 2);
}

// Polls until the metric has the value or `seconds` pass.
bool wait_metric(int port, const std::string& name, double value, int seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (metric(port, name) == value) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST(ServeLoad, SixtyFourClientsGetTheirAnswerOrA429AndServingGoesOn) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  ProcessCluster procs("serve-load");
  auto node = procs.start("n0", {"--model", model.string(), "--parallel", "8", "--max-queue", "8",
                                 "--ctx", "512"});
  ASSERT_TRUE(procs.wait_ready(node, 60)) << read_text(node.log);
  const std::int64_t rss_before = proc_status_bytes(node.pid, "VmRSS");

  constexpr int kClients = 64;
  constexpr int kTokens = 200;
  std::vector<int> status(kClients, 0);
  std::vector<int> tokens(kClients, 0);
  std::vector<std::string> retry_after(kClients), errors(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", node.api);
      c.set_connection_timeout(10, 0);
      c.set_read_timeout(120, 0);  // bounded: a hang fails the test instead of blocking it
      const json body = {{"prompt", json::array({1, 260 + i})},
                         {"max_tokens", kTokens},
                         {"temperature", 0},
                         {"ignore_eos", true}};
      auto r = c.Post("/v1/completions", body.dump(), "application/json");
      if (!r) {
        errors[i] = httplib::to_string(r.error());
        return;
      }
      status[i] = r->status;
      retry_after[i] = r->get_header_value("Retry-After");
      const json j = json::parse(r->body, nullptr, false);
      if (r->status == 200 && !j.is_discarded()) tokens[i] = j["usage"]["completion_tokens"];
      if (r->status == 429 && !j.is_discarded())
        EXPECT_EQ(j["error"]["type"], "rate_limit_exceeded") << r->body;
    });
  }
  for (auto& t : clients) t.join();
  int answered = 0, refused = 0;
  for (int i = 0; i < kClients; ++i) {
    if (status[i] == 200) {
      ++answered;
      EXPECT_EQ(tokens[i], kTokens) << "client " << i << " got a partial answer";
    } else if (status[i] == 429) {
      ++refused;
      EXPECT_GE(std::atoi(retry_after[i].c_str()), 1) << "client " << i;
    } else {
      ADD_FAILURE() << "client " << i << ": status " << status[i] << " " << errors[i];
    }
  }
  std::printf("[ load     ] %d answered in full, %d refused with 429\n", answered, refused);
  EXPECT_GE(answered, 16);  // at least every slot and queue place once
  EXPECT_EQ(metric(node.api, "herd_requests_rejected_total"), refused);
  // Everything drains, memory stays bounded, and the server still answers.
  EXPECT_TRUE(wait_metric(node.api, "herd_running_sequences", 0, 10));
  EXPECT_EQ(metric(node.api, "herd_queue_length"), 0);
  const std::int64_t rss_after = proc_status_bytes(node.pid, "VmRSS");
  EXPECT_LT(rss_after - rss_before, std::int64_t{64} << 20)
      << "resident memory grew from " << rss_before << " to " << rss_after;
  const json after = complete_ids(node.api, {1, 300}, 16);
  ASSERT_FALSE(after.contains("error")) << after.dump();
  EXPECT_EQ(after["usage"]["completion_tokens"], 16);
}

TEST(ServeLoad, AClientThatLeavesFreesItsSequenceAtOnce) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  ProcessCluster procs("serve-cancel");
  auto node = procs.start("n0", {"--model", model.string(), "--parallel", "1", "--ctx", "16384"});
  ASSERT_TRUE(procs.wait_ready(node, 60)) << read_text(node.log);

  // A streamed request read for three chunks, then its connection is closed.
  {
    httplib::Client c("127.0.0.1", node.api);
    c.set_read_timeout(60, 0);
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = json({{"prompt", json::array({1})},
                     {"max_tokens", 16000},
                     {"temperature", 0},
                     {"ignore_eos", true},
                     {"stream", true}})
                   .dump();
    req.set_header("Content-Type", "application/json");
    int chunks = 0;
    req.content_receiver = [&](const char*, std::size_t, std::uint64_t, std::uint64_t) {
      return ++chunks < 3;  // false: the client stops reading and drops the connection
    };
    c.send(req);
    c.stop();
  }
  EXPECT_TRUE(wait_metric(node.api, "herd_requests_cancelled_total", 1, 10));
  EXPECT_TRUE(wait_metric(node.api, "herd_running_sequences", 0, 10));

  // A non-streamed request whose client gives up waiting: the server notices the closed
  // connection while it generates and stops too.
  {
    httplib::Client c("127.0.0.1", node.api);
    c.set_read_timeout(0, 200'000);  // 0.2 s
    // 16000 tokens of stories260K take seconds (4000 took 0.5 s on the Zen 4 VM).
    const json body = {{"prompt", json::array({1, 300})},
                       {"max_tokens", 16000},
                       {"temperature", 0},
                       {"ignore_eos", true}};
    auto r = c.Post("/v1/completions", body.dump(), "application/json");
    EXPECT_FALSE(r) << "16000 tokens of stories260K within 0.2 s";
  }
  EXPECT_TRUE(wait_metric(node.api, "herd_requests_cancelled_total", 2, 10));
  EXPECT_TRUE(wait_metric(node.api, "herd_running_sequences", 0, 10));
  // The only slot is free again.
  const json after = complete_ids(node.api, {1, 301}, 8);
  ASSERT_FALSE(after.contains("error")) << after.dump();
}

}  // namespace
}  // namespace herd::testing
