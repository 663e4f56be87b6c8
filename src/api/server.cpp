#include "api/server.h"

#include <fmt/format.h>
#include <httplib.h>

#include <chrono>

#include "api/anthropic_api.h"
#include "api/connection_pool.h"
#include "api/http_handling.h"
#include "api/responses_api.h"
#include "api/sockets.h"
#include "cluster/control/auth.h"
#include "util/rate_history.h"

namespace herd::api {

using nlohmann::json;

namespace {

// Connections the kernel holds for us before accept (nginx's default).
constexpr int kListenBacklog = 511;

std::string metric_endpoint(const std::string& path) {
  for (const char* known :
       {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/v1/cluster",
        "/metrics", "/", "/v1/messages", "/v1/responses", "/api/chat", "/api/generate",
        "/api/tags", "/api/show", "/api/version"}) {
    if (path == known) return path;
  }
  return "other";
}

}  // namespace

ApiServer::ApiServer(Backend& backend, ApiOptions options)
    : backend_(backend),
      options_(std::move(options)),
      server_(std::make_unique<httplib::Server>()) {
  install_routes();
}

ApiServer::~ApiServer() {
  stop();
}

int ApiServer::start() {
  port_ = options_.port == 0
              ? server_->bind_to_any_port(options_.host)
              : (server_->bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (port_ <= 0)
    fail(
        "cannot listen for the API on {}:{} (address not on this machine, or port in use): pick "
        "another --api-port or --api-host",
        options_.host, options_.port);
  if (!widen_listen_backlog(port_, kListenBacklog))
    log::warn("api: could not raise the listen backlog of port {}", port_);
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  log::info("api: listening on http://{}:{}", options_.host, port_);
  return port_;
}

void ApiServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

void ApiServer::install_routes() {
  auto& s = *server_;
  s.new_task_queue = [n = options_.threads, max = options_.max_connections] {
    return new ConnectionPool(static_cast<std::size_t>(n),
                              static_cast<std::size_t>(std::max(n, max)));
  };
  s.set_read_timeout(options_.idle_timeout_s, 0);
  s.set_keep_alive_timeout(options_.idle_timeout_s);
  s.set_payload_max_length(std::size_t{64} << 20);
  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (options_.api_key.empty() || req.path == "/" || req.path == "/health")
      return httplib::Server::HandlerResponse::Unhandled;
    // OpenAI and Ollama clients send "Authorization: Bearer KEY", Anthropic's "x-api-key: KEY".
    const std::string expected = "Bearer " + options_.api_key;
    if (!cluster::constant_time_equal(req.get_header_value("Authorization"), expected) &&
        !cluster::constant_time_equal(req.get_header_value("x-api-key"), options_.api_key)) {
      send_error(res, error_style_of(req.path), 401,
                 "missing or wrong API key: send the header 'Authorization: Bearer <key>' (or "
                 "'x-api-key: <key>')",
                 "authentication_error", "", "invalid_api_key");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  s.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics_.record_request(metric_endpoint(req.path), res.status);
  });
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    send_error(res, error_style_of(req.path), res.status,
               res.status == 404
                   ? fmt::format("no route {} {}: see README's list of endpoints (OpenAI /v1/..., "
                                 "Anthropic /v1/messages, Ollama /api/...)",
                                 req.method, req.path)
                   : fmt::format("HTTP {}", res.status),
               error_type(res.status));
  });

  auto completion = [this](RequestKind kind) {
    return [this, kind](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        if (auto up = options_.upstream ? options_.upstream() : std::nullopt) {
          parse_request(req.body, kind);  // a malformed request is answered here, not forwarded
          forward(req, res, *up);
          return;
        }
        handle_completion(req, kind, res);
      });
    };
  };
  s.Post("/v1/chat/completions", completion(RequestKind::kChat));
  s.Post("/v1/completions", completion(RequestKind::kCompletion));

  install_ollama_routes();
  // Anthropic Messages and OpenAI Responses: the same generation in their shapes.
  s.Post("/v1/messages", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, ErrorStyle::kAnthropic, [&] {
      if (auto up = options_.upstream ? options_.upstream() : std::nullopt)
        return forward(req, res, *up);
      CompletionRequest request = parse_anthropic_messages(req.body);
      auto format = std::make_shared<AnthropicFormat>(
          next_id("msg_"), request.model.empty() ? backend_.model_id() : request.model);
      serve_generation(req, std::move(request), std::move(format), res);
    });
  });
  s.Post("/v1/responses", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      if (auto up = options_.upstream ? options_.upstream() : std::nullopt)
        return forward(req, res, *up);
      CompletionRequest request = parse_responses_request(req.body);
      auto format = std::make_shared<ResponsesFormat>(
          next_id(""), backend_.model_id(),
          std::chrono::duration_cast<std::chrono::seconds>(
              std::chrono::system_clock::now().time_since_epoch())
              .count());
      serve_generation(req, std::move(request), std::move(format), res);
    });
  });

  s.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      if (auto up = options_.upstream ? options_.upstream() : std::nullopt)
        return forward(req, res, *up);
      json model = {{"id", backend_.model_id()},
                    {"object", "model"},
                    {"created", 0},
                    {"owned_by", "herd"},
                    {"context_length", backend_.n_ctx()}};
      res.set_content(json{{"object", "list"}, {"data", json::array({model})}}.dump(),
                      "application/json");
    });
  });
  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const bool ready = backend_.ready();
    res.status = ready ? 200 : 503;
    res.set_content(json{{"status", backend_.status_text()}}.dump(), "application/json");
  });
  s.Get("/v1/cluster", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      // A worker shows the coordinator's view (it has the placement and the requests); its own
      // while the coordinator does not answer.
      if (auto up = options_.upstream ? options_.upstream() : std::nullopt) {
        try {
          forward(req, res, *up);
          if (res.status == 200) return;
        } catch (const ApiError&) {
        }
        res.status = 200;
      }
      json view = backend_.cluster_view();
      view["decode_tokens_per_s"] = metrics_.last_decode_tokens_per_s();
      add_activity(view);
      res.set_content(view.dump(-1, ' ', false, json::error_handler_t::replace),
                      "application/json");
    });
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    guarded(res, [&] {
      json view = backend_.cluster_view();
      add_activity(view);
      PowerReading power;
      if (view.contains("power") && view["power"].value("available", false))
        power.watts = view["power"]["watts"].get<double>();
      power.tokens_per_s = view["activity"].value("tokens_per_s", 0.0);
      res.set_content(
          metrics_.render(backend_.stage_timings(), backend_.scheduler_metrics(), power),
          "text/plain; version=0.0.4");
    });
  });
  s.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(dashboard_html(), "text/html; charset=utf-8");
  });
}

void ApiServer::add_activity(json& view) const {
  json activity = {{"tokens_per_s", 0.0},
                   {"history", std::vector<int>(RateHistory().seconds(), 0)},
                   {"generated_tokens", 0}};
  if (const auto m = backend_.scheduler_metrics()) {
    const auto now = std::chrono::steady_clock::now();
    activity = {{"tokens_per_s", m->generated.rate(now)},
                {"history", m->generated.per_second(now)},
                {"generated_tokens", m->generated_tokens}};
    view["serving"] = {
        {"waiting", m->waiting},
        {"running", m->running},
        {"max_running", m->max_running},
        {"last_batch_tokens", m->last_batch_tokens},
        {"last_batch_sequences", m->last_batch_sequences},
        {"batches", m->steps},
        {"rejected", m->rejected},
        {"cancelled", m->cancelled},
        {"cached_prompt_tokens", m->cached_prompt_tokens},
        {"recoveries", m->recoveries},
        {"replans", m->replans},
        {"resumed", m->resumed},
        {"unavailable", m->unavailable},
        {"ttft_ms_p50", 1000 * metrics_.ttft_quantile_s(0.5)},
        {"itl_ms_p50", 1000 * m->itl.quantile_bound(0.5)},
        {"itl_ms_p99", 1000 * m->itl.quantile_bound(0.99)},
    };
  }
  view["activity"] = activity;
  // Joules per token from the cluster's power now and the generation rate now.
  if (view.contains("power") && view["power"].value("available", false)) {
    const double tps = activity["tokens_per_s"].get<double>();
    view["power"]["joules_per_token"] =
        tps > 0 ? json(view["power"]["watts"].get<double>() / tps) : json(nullptr);
  }
}

const std::string& dashboard_html() {
  static const std::string html =
#include "api/dashboard_html.inc"
      ;
  return html;
}

}  // namespace herd::api
