// ApiServer: the one way every API's request becomes a generation: checked, tokenized,
// constrained when it must be, queued, then waited for or streamed, and cancelled when the
// client leaves.
#include <fmt/format.h>

#include <chrono>

#include "api/http_handling.h"
#include "api/openai_format.h"
#include "api/server.h"
#include "api/sockets.h"

namespace herd::api {

using nlohmann::json;

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
  // The stream starts with the first piece of text (or the end): an error before it (the cluster
  // cannot serve the model, the request failed) is then a proper HTTP status, not an event in a
  // stream that already said 200.
  auto first = std::make_shared<std::string>();
  bool finished_early = false;
  while (!(finished_early = ticket->wait(*first, std::chrono::milliseconds(100))) &&
         first->empty()) {
    if (probe->closed()) {
      ticket->cancel();
      return;
    }
  }
  if (finished_early && first->empty()) ticket->rethrow();
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      format->stream_content_type(),
      [this, request, format, ticket, probe, first](std::size_t, httplib::DataSink& sink) {
        auto write = [&](const std::string& text) {
          return text.empty() || sink.write(text.data(), text.size());
        };
        // Tool calls are read from the whole answer: it is written once complete.
        const bool hold = request.reads_calls();
        bool open = write(format->start(hold));
        bool finished = false;
        while (open && !finished) {
          std::string piece = std::move(*first);
          first->clear();
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

}  // namespace herd::api
