// The API server on a free port of 127.0.0.1, in-process, exercised with httplib::Client.
#include "api/server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <thread>

#include "engine/local_pipeline.h"
#include "gguf/reader.h"
#include "model/model.h"
#include "support/test_data.h"
#include "util/thread_pool.h"

namespace herd::api {
namespace {

using nlohmann::json;

// Answers every request with the prompt's ids as text "<id> ", one piece per id.
class EchoBackend : public Backend {
 public:
  std::string model_id() const override { return "echo"; }
  std::int32_t n_ctx() const override { return 16; }
  std::vector<std::int32_t> prepare(const CompletionRequest& r) override {
    std::vector<std::int32_t> ids = r.prompt_ids;
    if (ids.empty())
      ids.assign(r.kind == RequestKind::kChat ? r.messages.size() : r.prompt.size(), 7);
    if (static_cast<int>(ids.size()) + std::max(r.params.max_tokens, 1) > n_ctx())
      throw ApiError(400, "context exceeded", "invalid_request_error", "messages",
                     "context_length_exceeded");
    return ids;
  }
  std::shared_ptr<engine::Ticket> submit(const std::vector<std::int32_t>& prompt,
                                         const engine::GenerationParams&) override {
    auto ticket = std::make_shared<engine::Ticket>();
    engine::GenerationResult r;
    for (auto id : prompt) {
      std::string piece = std::to_string(id) + " ";
      r.text += piece;
      ticket->push(piece);
    }
    r.stats.prompt_tokens = static_cast<int>(prompt.size());
    r.stats.generated_tokens = static_cast<int>(prompt.size());
    r.stats.finish_reason = "stop";
    ticket->finish(std::move(r));
    return ticket;
  }
  json cluster_view() const override { return {{"self", "n1"}, {"members", json::array()}}; }
};

// An API server over an EchoBackend on a free port of 127.0.0.1, and a client of it.
struct EchoServer {
  explicit EchoServer(std::string api_key = "")
      : server(backend, options(std::move(api_key))), client("127.0.0.1", server.start()) {
    client.set_read_timeout(10, 0);
  }
  ~EchoServer() { server.stop(); }
  static ApiOptions options(std::string api_key) {
    ApiOptions o;
    o.port = 0;
    o.api_key = std::move(api_key);
    return o;
  }
  EchoBackend backend;
  ApiServer server;
  httplib::Client client;
};

TEST(ApiServer, ServesEveryEndpointAndSurvivesBadRequests) {
  EchoServer echo;
  httplib::Client& c = echo.client;

  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);

  auto models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(json::parse(models->body)["data"][0]["id"], "echo");

  // Malformed requests: 4xx with OpenAI's error object.
  for (const char* bad : {"{oops", R"({"model":"echo"})", R"({"messages":"hi"})"}) {
    auto r = c.Post("/v1/chat/completions", bad, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << bad;
    EXPECT_TRUE(json::parse(r->body)["error"].contains("message")) << r->body;
  }
  auto unknown =
      c.Post("/v1/chat/completions",
             R"({"model":"gpt-9","messages":[{"role":"user","content":"x"}]})", "application/json");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  EXPECT_EQ(json::parse(unknown->body)["error"]["code"], "model_not_found");
  auto too_long =
      c.Post("/v1/completions", R"({"prompt":[1,2,3],"max_tokens":100})", "application/json");
  ASSERT_TRUE(too_long);
  EXPECT_EQ(too_long->status, 400);
  EXPECT_EQ(json::parse(too_long->body)["error"]["code"], "context_length_exceeded");

  // ... and the server keeps serving.
  auto ok = c.Post("/v1/completions", R"({"prompt":[4,5],"max_tokens":2})", "application/json");
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(json::parse(ok->body)["choices"][0]["text"], "4 5 ");

  auto stream = c.Post(
      "/v1/chat/completions",
      R"({"messages":[{"role":"user","content":"a"}],"stream":true,"stream_options":{"include_usage":true}})",
      "application/json");
  ASSERT_TRUE(stream);
  EXPECT_EQ(stream->status, 200);
  EXPECT_NE(stream->body.find(R"("delta":{"content":"7 "})"), std::string::npos) << stream->body;
  EXPECT_NE(stream->body.find(R"("role":"assistant")"), std::string::npos);
  EXPECT_NE(stream->body.find(R"("usage":)"), std::string::npos);
  EXPECT_EQ(stream->body.substr(stream->body.size() - 14), "data: [DONE]\n\n");

  auto cluster = c.Get("/v1/cluster");
  ASSERT_TRUE(cluster);
  const json view = json::parse(cluster->body);
  EXPECT_EQ(view["self"], "n1");
  // The dashboard's activity: the rate now and the last minute, second by second.
  EXPECT_EQ(view["activity"]["history"].size(), 60u) << view.dump();
  EXPECT_TRUE(view["activity"]["tokens_per_s"].is_number());
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(
      metrics->body.find("herd_requests_total{endpoint=\"/v1/chat/completions\",status=\"400\"} 3"),
      std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("herd_generated_tokens_total 3"), std::string::npos);
  // The echo backend reports no power: said in a comment, no made-up figure.
  EXPECT_EQ(metrics->body.find("herd_power_watts "), std::string::npos);
  EXPECT_NE(metrics->body.find("# herd_power_watts: not available"), std::string::npos);
  auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_NE(page->body.find("/v1/cluster"), std::string::npos);
  auto missing = c.Get("/v2/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_TRUE(json::parse(missing->body).contains("error"));
}

TEST(ApiServer, RequiresTheApiKeyWhenSet) {
  EchoServer echo("sesame");
  httplib::Client& c = echo.client;
  auto denied = c.Get("/v1/models");
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 401);
  EXPECT_EQ(json::parse(denied->body)["error"]["type"], "authentication_error");
  auto wrong = c.Get("/v1/models", {{"Authorization", "Bearer nope"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto allowed = c.Get("/v1/models", {{"Authorization", "Bearer sesame"}});
  ASSERT_TRUE(allowed);
  EXPECT_EQ(allowed->status, 200);
  auto anthropic_style = c.Get("/v1/models", {{"x-api-key", "sesame"}});
  ASSERT_TRUE(anthropic_style);
  EXPECT_EQ(anthropic_style->status, 200);
  // Each API's own shape for the 401.
  auto ollama = c.Get("/api/tags");
  ASSERT_TRUE(ollama);
  EXPECT_EQ(ollama->status, 401);
  EXPECT_TRUE(json::parse(ollama->body)["error"].is_string());
  EXPECT_EQ(c.Get("/health")->status, 200);
}

TEST(ApiServer, ConcurrentClientsAreServedTogetherOnARealModel) {
  HERD_REQUIRE_SHARED(path, "models/stories260K.gguf");
  auto file = std::make_shared<const gguf::File>(gguf::File::open(path.string()));
  auto model = model::Model::load(file);
  auto tokenizer = model::Tokenizer::from_gguf(file->metadata());
  auto chat = model::ChatTemplate::for_model("", *tokenizer);
  ThreadPool pool(1);
  engine::LocalPipeline pipeline(model, 256, pool, /*n_seqs=*/4);
  engine::SchedulerOptions scheduling;
  scheduling.max_running = 4;
  PipelineBackend backend("stories260K", "stories260K.gguf", *tokenizer, chat, pipeline,
                          scheduling, [] { return json::object(); });
  ApiOptions options;
  options.port = 0;
  ApiServer server(backend, options);
  const int port = server.start();
  const std::string body =
      R"({"model":"stories260K","prompt":"Once upon a time","max_tokens":24,"temperature":0})";
  std::vector<std::string> texts(4);
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", port);
      c.set_read_timeout(60, 0);
      auto r = c.Post("/v1/completions", body, "application/json");
      if (r && r->status == 200) texts[i] = json::parse(r->body)["choices"][0]["text"];
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_FALSE(texts[0].empty());
  for (int i = 1; i < 4; ++i)
    EXPECT_EQ(texts[i], texts[0]) << "greedy output differs for client " << i;
  httplib::Client c("127.0.0.1", port);
  auto too_long =
      c.Post("/v1/completions", R"({"prompt":"Once","max_tokens":100000})", "application/json");
  ASSERT_TRUE(too_long);
  EXPECT_EQ(too_long->status, 400);
}

// A server over a real model with `parallel` sequences, for the tests below.
struct RealServer {
  RealServer(const std::filesystem::path& path, int parallel, int n_ctx = 256)
      : file(std::make_shared<const gguf::File>(gguf::File::open(path.string()))),
        model(model::Model::load(file)),
        tokenizer(model::Tokenizer::from_gguf(file->metadata())),
        chat(model::ChatTemplate::for_model("", *tokenizer)),
        pipeline(model, n_ctx, pool, parallel),
        backend("m", path.filename().string(), *tokenizer, chat, pipeline,
                engine::SchedulerOptions{.max_running = parallel, .max_waiting = 64},
                [] { return json::object(); }),
        server(backend, [] {
          ApiOptions o;
          o.port = 0;
          o.threads = 80;
          return o;
        }()) {
    port = server.start();
  }

  // Greedy completion of prompt ids; the generated text.
  std::string complete(const std::vector<std::int32_t>& prompt, int max_tokens,
                       bool cache_prompt = true, json* usage = nullptr) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(120, 0);
    const json body = {{"prompt", prompt},
                       {"max_tokens", max_tokens},
                       {"temperature", 0},
                       {"ignore_eos", true},
                       {"cache_prompt", cache_prompt}};
    auto r = c.Post("/v1/completions", body.dump(), "application/json");
    if (!r || r->status != 200) return "<failed>";
    const json j = json::parse(r->body);
    if (usage) *usage = j["usage"];
    return j["choices"][0]["text"];
  }

  ThreadPool pool{2};
  std::shared_ptr<const gguf::File> file;
  std::shared_ptr<model::Model> model;
  std::unique_ptr<model::Tokenizer> tokenizer;
  model::ChatTemplate chat;
  engine::LocalPipeline pipeline;
  PipelineBackend backend;
  ApiServer server;
  int port = 0;
};

// Eight different prompts of different lengths (token ids of the 512-token vocabulary).
std::vector<std::vector<std::int32_t>> eight_prompts() {
  std::vector<std::vector<std::int32_t>> out;
  for (int i = 0; i < 8; ++i) {
    std::vector<std::int32_t> p = {1};
    for (int j = 0; j < 4 + 5 * i; ++j) p.push_back(260 + (37 * i + 11 * j) % 240);
    out.push_back(p);
  }
  return out;
}

// Batch invariance through the API: each of eight simultaneous greedy requests returns exactly
// the text it returns alone (the KV cache not reused: cache_prompt false).
void expect_concurrent_equals_alone(const std::filesystem::path& path) {
  RealServer s(path, 8);
  const auto prompts = eight_prompts();
  std::vector<std::string> alone, together(8);
  for (const auto& p : prompts) alone.push_back(s.complete(p, 24, false));
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i)
    clients.emplace_back([&, i] { together[i] = s.complete(prompts[i], 24, false); });
  for (auto& t : clients) t.join();
  for (int i = 0; i < 8; ++i) {
    EXPECT_NE(alone[i], "<failed>");
    EXPECT_EQ(together[i], alone[i]) << path.filename() << " request " << i;
  }
  // The eight ran as one batch at least once.
  const auto m = s.backend.scheduler_metrics();
  ASSERT_TRUE(m.has_value());
  EXPECT_GE(m->batch_size.count(), 1u);
}

TEST(ApiBatching, ConcurrentGreedyRequestsEqualThemselvesAloneOnStories260K) {
  HERD_REQUIRE_SHARED(path, "models/stories260K.gguf");
  expect_concurrent_equals_alone(path);
}

TEST(ApiBatching, ConcurrentGreedyRequestsEqualThemselvesAloneOnF16Goldens) {
  for (const char* stem : {"llama-f16", "qwen2-f16", "qwen3-f16", "llama-moe-f16",
                           "qwen2moe-f16", "qwen3moe-f16", "deepseek2-f16"}) {
    HERD_REQUIRE_SHARED(path, std::string("golden/") + stem + ".gguf");
    expect_concurrent_equals_alone(path);
  }
}

TEST(ApiBatching, NextTurnReportsCachedTokensAndReusesThem) {
  HERD_REQUIRE_SHARED(path, "models/stories260K.gguf");
  RealServer s(path, 2);
  std::vector<std::int32_t> turn1 = eight_prompts()[7];
  json usage;
  const std::string first = s.complete(turn1, 8, true, &usage);
  EXPECT_EQ(usage["prompt_tokens_details"]["cached_tokens"], 0);
  // The next turn resends the first prompt (and more); everything but its last token is reused.
  std::vector<std::int32_t> turn2 = turn1;
  for (int i = 0; i < 6; ++i) turn2.push_back(300 + i);
  s.complete(turn2, 4, true, &usage);
  EXPECT_EQ(usage["prompt_tokens"], static_cast<int>(turn2.size()));
  EXPECT_GE(usage["prompt_tokens_details"]["cached_tokens"].get<int>(),
            static_cast<int>(turn1.size()));
  // And reuse does not change the answer.
  std::vector<std::int32_t> again = turn1;
  EXPECT_EQ(s.complete(again, 8, true, &usage), first);
  EXPECT_EQ(usage["prompt_tokens_details"]["cached_tokens"], static_cast<int>(turn1.size()) - 1);
}

}  // namespace
}  // namespace herd::api

namespace herd::api {
namespace {

// Every field of a valid request of each API replaced, one at a time, by values of every other
// JSON type: each answer is a 4xx in that API's error shape (or a 200 where the value happens to
// be valid), never a 5xx; then a valid request is still answered.
TEST(ApiServer, MalformedFieldsOfEveryApiGetItsOwn4xxShape) {
  EchoServer echo;
  httplib::Client& c = echo.client;
  const std::vector<std::pair<std::string, json>> valid = {
      {"/v1/chat/completions",
       json::parse(R"({"model":"echo","messages":[{"role":"user","content":"a"}],"max_tokens":2,
                      "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]})")},
      {"/v1/completions", json::parse(R"({"prompt":[1,2],"max_tokens":2,"stop":["x"]})")},
      {"/v1/responses",
       json::parse(R"({"input":[{"role":"user","content":"a"}],"instructions":"i","max_output_tokens":2,
                      "text":{"format":{"type":"text"}}})")},
      {"/v1/messages",
       json::parse(R"({"max_tokens":2,"system":"s","messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],
                      "tool_choice":{"type":"auto"}})")},
      {"/api/chat",
       json::parse(R"({"model":"echo","messages":[{"role":"user","content":"a"}],"stream":false,
                      "options":{"num_predict":2,"temperature":0.5}})")},
      {"/api/generate", json::parse(R"({"model":"echo","prompt":"a","stream":false,"system":"s","options":{"num_predict":2}})")},
      {"/api/show", json::parse(R"({"model":"echo"})")},
  };
  const std::vector<json> wrong = {json(12345), json("text"), json(nullptr), json::array(),
                                   json::object(), json(true), json(-1), json(1e308),
                                   json::array({json::object()})};
  int requests = 0;
  for (const auto& [path, body] : valid) {
    // Every path to a value in the body: top-level keys, and one level into objects and arrays.
    std::vector<json::json_pointer> paths;
    const json flat_body = body.flatten();
    for (const auto& flat : flat_body.items()) {
      json::json_pointer p(flat.key());
      for (; !p.empty(); p = p.parent_pointer()) paths.push_back(p);
    }
    const ErrorStyle style = error_style_of(path);
    for (const auto& p : paths) {
      for (const json& value : wrong) {
        json mutated = body;
        mutated[p] = value;
        auto r = c.Post(path, mutated.dump(), "application/json");
        ++requests;
        ASSERT_TRUE(r) << path << " " << p.to_string();
        ASSERT_LT(r->status, 500) << path << " " << p.to_string() << " = " << value.dump() << ": "
                                  << r->body;
        if (r->status < 400) continue;
        const json e = json::parse(r->body, nullptr, false);
        ASSERT_TRUE(e.is_object()) << r->body;
        if (style == ErrorStyle::kOllama) {
          EXPECT_TRUE(e["error"].is_string()) << r->body;
        } else if (style == ErrorStyle::kAnthropic) {
          EXPECT_EQ(e.value("type", ""), "error") << r->body;
        } else {
          EXPECT_TRUE(e["error"].is_object()) << r->body;
        }
      }
    }
    for (const char* garbage : {"", "{", "[]", "null", "{\"a\":", "\xff\xfe"}) {
      auto r = c.Post(path, garbage, "application/json");
      ++requests;
      ASSERT_TRUE(r);
      EXPECT_GE(r->status, 400) << path << " " << garbage;
      EXPECT_LT(r->status, 500) << path << " " << garbage << ": " << r->body;
    }
  }
  EXPECT_GT(requests, 400);
  // Nested far too deep for any API: refused before parsing, in the API's shape.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  for (const char* path : {"/v1/chat/completions", "/v1/messages", "/api/chat"}) {
    auto r = c.Post(path, deep, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << path;
    EXPECT_NE(r->body.find("nests deeper"), std::string::npos) << r->body;
  }
  auto ok = c.Post("/v1/chat/completions", R"({"messages":[{"role":"user","content":"a"}]})",
                   "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

}  // namespace
}  // namespace herd::api
