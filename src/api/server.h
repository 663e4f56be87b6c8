// The HTTP API of a node (cpp-httplib), one generation flow behind several APIs:
//
//   POST /v1/chat/completions, /v1/completions, /v1/responses   OpenAI
//   POST /v1/messages                                            Anthropic Messages
//   POST /api/chat, /api/generate; GET /api/tags, /api/version;  Ollama
//   POST /api/show
//   GET  /v1/models, /health, /v1/cluster, /metrics, /          models, health, cluster view,
//                                                                Prometheus, the dashboard
//
// Generations are queued to the Backend's scheduler (many at once; 429 + Retry-After when it
// is full). Errors come in each API's own shape with a 4xx/5xx status; a bad request never stops
// the server. With an API key set, every route but / and /health needs "Authorization: Bearer
// <key>" or "x-api-key: <key>". A node that is not the coordinator forwards generations,
// /v1/models and /v1/cluster to the coordinator's API (`upstream`) and answers the rest itself.
// Files: server.cpp (lifecycle, routes), server_generation.cpp (the generation flow),
// server_ollama.cpp (/api/*), http_handling (errors, forwarding).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "api/answer_format.h"
#include "api/backend.h"
#include "api/metrics.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}

namespace herd::api {

struct ApiOptions {
  std::string host = "127.0.0.1";  // only this address is bound
  int port = 8080;                 // 0: any free port (see ApiServer::port())
  std::string api_key;             // empty: no authentication
  // "host:port" of the API to forward completions to, or nullopt to serve them here. Asked per
  // request, so a node follows a coordinator change.
  std::function<std::optional<std::string>()> upstream;
  // Connection threads kept ready: at least the scheduler's running + queued requests, so that a
  // full queue is answered 429 at once instead of waiting for a connection thread.
  int threads = 8;
  // Connections served at once; more threads are started as connections come (slow clients
  // hold one each without stopping anyone else), beyond this they wait (connection_pool.h).
  int max_connections = 1024;
  // A connection that sends nothing for this long, in a request or between two (keep-alive),
  // is closed.
  int idle_timeout_s = 10;
};

class ApiServer {
 public:
  // `backend` must outlive the server.
  ApiServer(Backend& backend, ApiOptions options);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds and serves on a background thread. Throws herd::Error naming the address when the
  // port cannot be bound. Returns the port.
  int start();
  void stop();
  int port() const { return port_; }
  Metrics& metrics() { return metrics_; }

 private:
  void install_routes();
  void install_ollama_routes();  // /api/*
  void handle_completion(const httplib::Request& http, RequestKind kind, httplib::Response& res);
  // Runs `request` and answers in `format`: the one way every API's generation goes (queue,
  // stream or wait, cancel when the client leaves).
  void serve_generation(const httplib::Request& http, CompletionRequest request,
                        std::shared_ptr<AnswerFormat> format, httplib::Response& res);
  // 503 while the model is not ready; 404 for a model this server does not have.
  void check_model(const std::string& model) const;
  std::string next_id(std::string_view prefix);
  // GET /v1/cluster's "activity" (tokens/s now and over the last minute), "serving" (queue,
  // latencies) and the power's joules per token.
  void add_activity(nlohmann::json& view) const;

  Backend& backend_;
  ApiOptions options_;
  Metrics metrics_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<std::uint64_t> next_id_{1};
};

// The dashboard page (web/dashboard.html, embedded at build time).
const std::string& dashboard_html();

}  // namespace herd::api
