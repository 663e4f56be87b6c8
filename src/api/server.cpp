#include "api/server.h"

#include <fmt/format.h>
#include <httplib.h>

#include <chrono>

#include "api/anthropic_api.h"
#include "api/ollama_api.h"
#include "api/responses_api.h"
#include "api/openai_format.h"
#include "api/sockets.h"
#include "cluster/control/auth.h"
#include "util/error.h"
#include "util/log.h"
#include "util/rate_history.h"

namespace herd::api {

using nlohmann::json;

namespace {

// Connections the kernel holds for us before accept (nginx's default).
constexpr int kListenBacklog = 511;

void send_error(httplib::Response& res, ErrorStyle style, int status, std::string_view message,
                std::string_view type, std::string_view param = "", std::string_view code = "",
                int retry_after_s = 0) {
  res.status = status;
  if (retry_after_s > 0) res.set_header("Retry-After", std::to_string(retry_after_s));
  res.set_content(error_json(style, status, message, type, param, code).dump(),
                  "application/json");
}

const char* error_type(int status) {
  if (status == 401) return "authentication_error";
  if (status == 404) return "not_found_error";
  if (status == 503) return "service_unavailable";
  return status >= 500 ? "server_error" : "invalid_request_error";
}

// Runs a handler, turning every exception into an error response in the API's own shape.
template <typename Fn>
void guarded(httplib::Response& res, ErrorStyle style, Fn&& fn) {
  try {
    fn();
  } catch (const ApiError& e) {
    send_error(res, style, e.status, e.what(), e.type, e.param, e.code, e.retry_after_s);
  } catch (const InvalidArgument& e) {
    send_error(res, style, 400, e.what(), "invalid_request_error");
  } catch (const std::exception& e) {
    log::error("api: request failed: {}", e.what());
    send_error(res, style, 500, e.what(), "server_error");
  }
}

template <typename Fn>
void guarded(httplib::Response& res, Fn&& fn) {
  guarded(res, ErrorStyle::kOpenAI, std::forward<Fn>(fn));
}

std::string metric_endpoint(const std::string& path) {
  for (const char* known :
       {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/v1/cluster",
        "/metrics", "/", "/v1/messages", "/v1/responses", "/api/chat", "/api/generate",
        "/api/tags", "/api/show", "/api/version"}) {
    if (path == known) return path;
  }
  return "other";
}

bool split_host_port(const std::string& text, std::string& host, int& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  host = text.substr(0, colon);
  port = std::atoi(text.c_str() + colon + 1);
  return port > 0 && port < 65536;
}

// Forwards a request to the coordinator's API and relays its answer, streaming it through.
void forward(const httplib::Request& req, httplib::Response& res, const std::string& upstream) {
  std::string host;
  int port = 0;
  if (!split_host_port(upstream, host, port))
    throw ApiError(503, "no coordinator API address known yet; retry shortly",
                   "service_unavailable");
  httplib::Headers headers;
  if (req.has_header("Authorization"))
    headers.emplace("Authorization", req.get_header_value("Authorization"));
  if (req.method == "GET") {
    httplib::Client client(host, port);
    client.set_read_timeout(600, 0);
    auto r = client.Get(req.path.c_str(), headers);
    if (!r)
      throw ApiError(502,
                     fmt::format("the coordinator's API at {} does not answer: {}", upstream,
                                 httplib::to_string(r.error())),
                     "server_error");
    res.status = r->status;
    res.set_content(r->body, r->get_header_value("Content-Type"));
    return;
  }
  const std::string path = req.path;
  const std::string body = req.body;
  res.set_header("Cache-Control", "no-cache");
  // The status is sent before the coordinator answers: an error from it arrives as the body (an
  // SSE "data: {error}" line when the client asked for a stream).
  res.set_chunked_content_provider("text/event-stream", [host, port, path, body, headers, upstream](
                                                            std::size_t, httplib::DataSink& sink) {
    httplib::Client client(host, port);
    client.set_read_timeout(600, 0);
    httplib::Request r;
    r.method = "POST";
    r.path = path;
    r.headers = headers;
    r.body = body;
    r.set_header("Content-Type", "application/json");
    r.content_receiver = [&](const char* data, std::size_t n, std::uint64_t, std::uint64_t) {
      return sink.write(data, n);
    };
    auto result = client.send(r);
    if (!result) {
      const std::string e =
          sse_event(error_body(fmt::format("the coordinator's API at {} does not answer: {}",
                                           upstream, httplib::to_string(result.error())),
                               "server_error"));
      sink.write(e.data(), e.size());
    }
    sink.done();
    return true;
  });
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
  s.new_task_queue = [n = options_.threads] { return new httplib::ThreadPool(n); };
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

void ApiServer::install_ollama_routes() {
  auto& s = *server_;
  auto generation = [this](bool chat) {
    return [this, chat](const httplib::Request& req, httplib::Response& res) {
      guarded(res, ErrorStyle::kOllama, [&] {
        if (auto up = options_.upstream ? options_.upstream() : std::nullopt)
          return forward(req, res, *up);
        if (!chat && ollama_is_load_only(req.body)) {
          // No prompt: Ollama loads the model and says so; here it is loaded already.
          check_model(json::parse(req.body).value("model", ""));
          res.set_content(json{{"model", backend_.model_id()},
                               {"created_at", ""},
                               {"response", ""},
                               {"done", true},
                               {"done_reason", "load"}}
                              .dump(),
                          "application/json");
          return;
        }
        CompletionRequest request = chat ? parse_ollama_chat(req.body) : parse_ollama_generate(req.body);
        auto format = std::make_shared<OllamaFormat>(
            chat, request.model.empty() ? backend_.model_id() : request.model);
        serve_generation(req, std::move(request), std::move(format), res);
      });
    };
  };
  s.Post("/api/chat", generation(true));
  s.Post("/api/generate", generation(false));
  s.Get("/api/version", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(json{{"version", HERD_VERSION}}.dump(), "application/json");
  });
  s.Get("/api/tags", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, ErrorStyle::kOllama, [&] {
      if (auto up = options_.upstream ? options_.upstream() : std::nullopt)
        return forward(req, res, *up);
      res.set_content(ollama_tags(backend_.model_id(), backend_.model_details()).dump(),
                      "application/json");
    });
  });
  s.Post("/api/show", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, ErrorStyle::kOllama, [&] {
      if (auto up = options_.upstream ? options_.upstream() : std::nullopt)
        return forward(req, res, *up);
      const json body = json::parse(req.body, nullptr, false);
      if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
      std::string model;
      for (const char* key : {"model", "name"})
        if (body.contains(key) && body[key].is_string()) model = body[key].get<std::string>();
      check_model(model);
      res.set_content(
          ollama_show(backend_.model_id(), backend_.model_details(), backend_.n_ctx()).dump(),
          "application/json");
    });
  });
}

void ApiServer::check_model(const std::string& model) const {
  if (!backend_.ready())
    throw ApiError(
        503, fmt::format("the model is not ready yet ({}); retry shortly", backend_.status_text()),
        "service_unavailable");
  const std::string id = backend_.model_id();
  // Ollama clients name a model "name:tag".
  if (model.empty() || model == id || model == backend_.model_file() ||
      (model.size() > id.size() && model.compare(0, id.size(), id) == 0 && model[id.size()] == ':'))
    return;
  throw ApiError(404,
                 fmt::format("the model '{}' does not exist here; this server has '{}' "
                             "(GET /v1/models)",
                             model, id),
                 "invalid_request_error", "model", "model_not_found");
}

std::string ApiServer::next_id(std::string_view prefix) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return fmt::format("{}{:x}{:06x}", prefix,
                     std::chrono::duration_cast<std::chrono::milliseconds>(now).count(),
                     next_id_++);
}

void ApiServer::handle_completion(const httplib::Request& http, RequestKind kind,
                                  httplib::Response& res) {
  CompletionRequest request = parse_request(http.body, kind);
  ResponseIds ids{next_id(kind == RequestKind::kChat ? "chatcmpl-" : "cmpl-"),
                  std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count(),
                  backend_.model_id()};
  auto format = std::make_shared<OpenAIFormat>(kind, ids, request.include_usage);
  serve_generation(http, std::move(request), std::move(format), res);
}

void ApiServer::serve_generation(const httplib::Request& http, CompletionRequest request,
                                 std::shared_ptr<AnswerFormat> format, httplib::Response& res) {
  check_model(request.model);
  std::vector<std::int32_t> prompt = backend_.prepare(request);
  format->set_prompt_tokens(static_cast<int>(prompt.size()));
  if (request.output_schema) {
    // Each byte of the shortest document may need a token of its own: fewer cannot be promised.
    const int needed = request.output_schema->node(request.output_schema->root).min_chars;
    if (request.params.max_tokens > 0 && request.params.max_tokens < needed)
      throw ApiError(400,
                     fmt::format("max_tokens is {}, but the shortest answer of the required JSON "
                                 "form takes up to {} tokens: raise max_tokens",
                                 request.params.max_tokens, needed),
                     "invalid_request_error", "max_tokens");
    request.params.constraint = backend_.json_constraint(*request.output_schema);
  }
  // Queued now, so that a full queue is a 429 before any response starts.
  std::shared_ptr<engine::Ticket> ticket = backend_.submit(prompt, request.params);
  auto probe = std::make_shared<ConnectionProbe>(http.local_addr, http.local_port,
                                                 http.remote_addr, http.remote_port);
  if (!request.stream) {
    std::string streamed;  // not sent piecewise: the result below holds the whole text
    while (!ticket->wait(streamed, std::chrono::milliseconds(100))) {
      if (probe->closed()) {
        ticket->cancel();  // the client left: its sequence is freed at the scheduler's next step
      }
    }
    ticket->rethrow();
    const engine::GenerationResult& result = ticket->result();
    metrics_.record_generation(result.stats);
    res.set_content(format->whole(read_answer(request, result), result.stats)
                        .dump(-1, ' ', false, json::error_handler_t::replace),
                    "application/json");
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      format->stream_content_type(),
      [this, request, format, ticket, probe](std::size_t, httplib::DataSink& sink) {
        auto write = [&](const std::string& text) {
          return text.empty() || sink.write(text.data(), text.size());
        };
        // Tool calls are read from the whole answer: it is written once complete.
        const bool hold = request.reads_calls();
        bool open = write(format->start(hold));
        bool finished = false;
        while (open && !finished) {
          std::string piece;
          finished = ticket->wait(piece, std::chrono::milliseconds(100));
          if (!piece.empty() && !hold) open = write(format->piece(piece));
          if (probe->closed()) open = false;
        }
        if (!open) {
          ticket->cancel();
          return false;
        }
        try {
          ticket->rethrow();
          const engine::GenerationResult& result = ticket->result();
          metrics_.record_generation(result.stats);
          write(format->end(read_answer(request, result), result.stats, hold));
        } catch (const std::exception& e) {
          log::error("api: generation failed: {}", e.what());
          write(format->stream_error(e.what()));
        }
        sink.done();
        return true;
      },
      // Called however the response ends: a client gone before the end cancels its request.
      [ticket](bool) { ticket->cancel(); });
}

const std::string& dashboard_html() {
  static const std::string html =
#include "api/dashboard_html.inc"
      ;
  return html;
}

}  // namespace herd::api
