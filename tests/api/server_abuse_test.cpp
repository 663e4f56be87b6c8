// The API server against clients that misbehave, in-process on 127.0.0.1 over a real model
// (stories260K): 10^4 malformed requests of every kind (seeded), each answered 4xx, with the
// server serving a correct request exactly as before; and 200 slow clients holding connections
// open while a normal client is served. Also run under ASan/UBSan (scripts/test.sh).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include "api/backend.h"
#include "api/server.h"
#include "engine/local_pipeline.h"
#include "gguf/reader.h"
#include "model/chat_template.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "support/test_data.h"
#include "util/thread_pool.h"

namespace herd::api {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// stories260K behind the real scheduler and API server.
struct ModelServer {
  explicit ModelServer(const std::filesystem::path& path, int idle_timeout_s = 3)
      : file(std::make_shared<const gguf::File>(gguf::File::open(path.string()))),
        tokenizer(model::Tokenizer::from_gguf(file->metadata())),
        chat(model::ChatTemplate::for_model("", *tokenizer)),
        pool(1),
        pipeline(model::Model::load(file), 256, pool, 2),
        backend("stories260K", "stories260K.gguf", *tokenizer, chat, pipeline,
                engine::SchedulerOptions{.max_running = 2, .max_waiting = 8},
                [] { return json::object(); }),
        server(backend, options(idle_timeout_s)) {
    port = server.start();
  }
  ~ModelServer() {
    server.stop();
    backend.stop();
  }
  static ApiOptions options(int idle_timeout_s) {
    ApiOptions o;
    o.port = 0;
    o.threads = 4;
    o.idle_timeout_s = idle_timeout_s;
    return o;
  }
  std::shared_ptr<const gguf::File> file;
  std::unique_ptr<model::Tokenizer> tokenizer;
  model::ChatTemplate chat;
  ThreadPool pool;
  engine::LocalPipeline pipeline;
  PipelineBackend backend;
  ApiServer server;
  int port = 0;
};

int connect_to(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends raw bytes on a new connection and returns the HTTP status of the answer (0: none within
// the timeout, or the connection closed without one).
int raw_status(int port, const std::string& bytes, int timeout_ms = 5000) {
  const int fd = connect_to(port);
  if (fd < 0) return -1;
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  std::string answer;
  char buf[4096];
  const auto until = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (answer.find("\r\n") == std::string::npos && Clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    answer.append(buf, static_cast<std::size_t>(n));
  }
  close(fd);
  if (answer.rfind("HTTP/1.", 0) != 0 || answer.size() < 12) return 0;
  return std::atoi(answer.c_str() + 9);
}

std::string post(const std::string& path, const std::string& body,
                 const std::string& extra_headers = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
         "Content-Type: application/json\r\n" + extra_headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string greedy_text(int port) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  auto r = c.Post("/v1/completions",
                  R"({"prompt":"Once upon a time","max_tokens":24,"temperature":0})",
                  "application/json");
  if (!r || r->status != 200) return "<failed>";
  return json::parse(r->body)["choices"][0]["text"];
}

// A request that is malformed by construction, of one of many kinds.
std::string malformed(std::mt19937& rng) {
  static const std::vector<std::string> paths = {"/v1/completions", "/v1/chat/completions",
                                                 "/v1/messages",    "/v1/responses",
                                                 "/api/generate",   "/api/chat"};
  static const std::vector<std::string> valid = {
      R"({"prompt":"Once","max_tokens":2,"temperature":0})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":2})",
      R"({"model":"m","max_tokens":2,"messages":[{"role":"user","content":"hi"}]})",
      R"({"model":"m","input":"hi","max_output_tokens":16})",
      R"({"model":"m","prompt":"hi","stream":false,"options":{"num_predict":2}})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false})"};
  // Values each OpenAI field rejects (null, [] and {} are left out: absent or empty is valid).
  static const std::vector<std::pair<std::string, std::vector<std::string>>> wrong = {
      {"max_tokens", {"\"x\"", "-1", "1e999", "[1]", "true", "-9999999999", "{}"}},
      {"temperature", {"\"x\"", "-1", "9", "1e999", "[]", "{}"}},
      {"top_p", {"\"x\"", "-0.5", "2", "[]"}},
      {"stream", {"\"yes\"", "1", "[]", "{}"}},
      {"stop", {"5", "{}", "[1]"}},
      {"logit_bias", {"\"x\"", "[1]"}},
      {"seed", {"\"x\"", "1.5", "[]"}},
      {"messages", {"\"x\"", "5", "{}", "[1]", "[{}]", "[{\"role\":5}]"}},
      {"response_format", {"\"x\"", "5", "{\"type\":\"nope\"}"}},
      {"tools", {"\"x\"", "5", "[5]", "[{\"type\":\"function\"}]"}}};
  const std::size_t which = rng() % paths.size();
  const std::string& path = paths[which];
  const std::string& good = valid[which];
  switch (rng() % 9) {
    case 0:  // truncated JSON
      return post(path, good.substr(0, rng() % (good.size() - 1)));
    case 1: {  // random bytes
      std::string body(1 + rng() % 300, '\0');
      for (char& ch : body) ch = static_cast<char>(rng());
      if (body[0] == '{' || body[0] == '[') body[0] = '!';
      return post(path, body);
    }
    case 2: {  // an OpenAI field of the wrong type or out of range
      const bool chat = rng() % 2;
      // Completions read the first seven fields; chat completions all of them.
      const auto& [field, values] = wrong[rng() % (chat ? wrong.size() : 7)];
      json j = json::parse(chat ? valid[1] : valid[0]);
      j.erase(field);
      std::string body = j.dump();
      body.insert(1, "\"" + field + "\":" + values[rng() % values.size()] + ",");
      return post(chat ? paths[1] : paths[0], body);
    }
    case 3: {  // nesting deeper than the server accepts
      const int depth = 200 + static_cast<int>(rng() % 5000);
      return post(path, "{\"prompt\":" + std::string(depth, '[') + std::string(depth, ']') + "}");
    }
    case 4: {  // invalid UTF-8 inside a string
      std::string body = good;
      const std::size_t at = body.find("hi") != std::string::npos ? body.find("hi")
                                                                  : body.find("Once");
      body.insert(at, std::string("\xc3\x28\xff", 3));
      return post(path, body);
    }
    case 5:  // no such route, or the wrong method
      return rng() % 2 ? post("/v1/nothing/" + std::to_string(rng() % 1000), good)
                       : "DELETE " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    case 6: {  // a broken request line or header
      static const std::vector<std::string> lines = {
          "GARBAGE\r\n\r\n", "GET\r\n\r\n", "POST /v1/completions HTTP/9.9\r\n\r\n",
          "POST /v1/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
          "POST /v1/completions HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
          "POST /v1/completions HTTP/1.1\r\nNoColonHere\r\n\r\n"};
      return lines[rng() % lines.size()];
    }
    case 7:  // a body that says it is something else
      return post(path, good, "Transfer-Encoding: chunked\r\n").substr(0, 200) + "\r\nzz\r\n";
    default: {  // not an object, no prompt, or a prompt that does not fit the context
      static const std::vector<std::string> anywhere = {"[]", "\"text\"", "5"};
      static const std::vector<std::string> openai = {
          "{}", R"({"prompt":"Once","max_tokens":100000})", R"({"messages":[]})",
          R"({"messages":[{"role":"nobody","content":"x"}]})"};
      if (rng() % 2) return post(path, anywhere[rng() % anywhere.size()]);
      return post(paths[rng() % 2], openai[rng() % openai.size()]);
    }
  }
}

TEST(ApiAbuse, TenThousandMalformedRequestsEachGet4xxAndServingGoesOn) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  ModelServer s(model, /*idle_timeout_s=*/1);  // what waits for a line that never ends
  const std::string before = greedy_text(s.port);
  ASSERT_NE(before, "<failed>");
  std::mt19937 rng(20261207);
  const int n = std::getenv("HERD_FUZZ_N") ? std::atoi(std::getenv("HERD_FUZZ_N")) : 10000;
  std::vector<std::string> requests;
  for (int i = 0; i < n; ++i) requests.push_back(malformed(rng));
  // Many clients at once: a request the server waits on (a header line it cannot end) costs its
  // idle timeout, and the others go on meanwhile.
  std::vector<int> statuses(requests.size());
  std::atomic<std::size_t> next{0};
  const auto started = Clock::now();
  std::vector<std::thread> clients;
  for (int t = 0; t < 32; ++t) {
    clients.emplace_back([&] {
      for (std::size_t i; (i = next++) < requests.size();) statuses[i] = raw_status(s.port, requests[i]);
    });
  }
  for (auto& t : clients) t.join();
  std::printf("%d malformed requests in %.1f s\n", n,
              std::chrono::duration<double>(Clock::now() - started).count());
  int not_4xx = 0;
  std::string example;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (statuses[i] >= 400 && statuses[i] < 500) continue;
    if (++not_4xx <= 3)
      example += fmt::format("\n{} for: {}", statuses[i], requests[i].substr(0, 300));
  }
  EXPECT_EQ(not_4xx, 0) << example;
  EXPECT_EQ(greedy_text(s.port), before);
}

TEST(ApiAbuse, SlowClientsHoldingConnectionsDoNotStopOthers) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  ModelServer s(model);
  const std::string expected = greedy_text(s.port);
  // 200 clients send a request's first bytes and then one more byte now and then, never ending
  // their headers: each holds a connection (and its thread) for as long as it trickles.
  std::vector<int> slow;
  for (int i = 0; i < 200; ++i) {
    const int fd = connect_to(s.port);
    ASSERT_GE(fd, 0);
    const std::string start = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    send(fd, start.data(), start.size(), MSG_NOSIGNAL);
    slow.push_back(fd);
  }
  std::atomic<bool> trickling{true};
  std::thread trickle([&] {
    while (trickling) {
      for (int fd : slow) send(fd, "a", 1, MSG_NOSIGNAL);
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto asked = Clock::now();
  const std::string text = greedy_text(s.port);
  const double took = std::chrono::duration<double>(Clock::now() - asked).count();
  trickling = false;
  trickle.join();
  for (int fd : slow) close(fd);
  EXPECT_EQ(text, expected);
  EXPECT_LT(took, 5.0) << "a normal client waited behind the slow ones";
}

TEST(ApiAbuse, IdleConnectionsAreClosed) {
  HERD_REQUIRE_SHARED(model, "models/stories260K.gguf");
  ModelServer s(model);  // idle timeout 3 s
  const int fd = connect_to(s.port);
  ASSERT_GE(fd, 0);
  const std::string part = "POST /v1/completions HTTP/1.1\r\nHost: x\r\n";
  send(fd, part.data(), part.size(), MSG_NOSIGNAL);
  pollfd p{fd, POLLIN, 0};
  const auto start = Clock::now();
  char c;
  bool closed = false;
  while (Clock::now() - start < std::chrono::seconds(10)) {
    if (poll(&p, 1, 100) > 0 && recv(fd, &c, 1, 0) <= 0) {
      closed = true;
      break;
    }
  }
  close(fd);
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 8.0);
}

}  // namespace
}  // namespace herd::api
