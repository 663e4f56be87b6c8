// ApiServer: Ollama's routes (/api/*), over the same generation flow as the others.
#include <fmt/format.h>

#include "api/http_handling.h"
#include "api/ollama_api.h"
#include "api/server.h"

namespace herd::api {

using nlohmann::json;

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
      check_json_depth(req.body);
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

}  // namespace herd::api
