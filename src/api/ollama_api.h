// Ollama's API (github.com/ollama/ollama docs/api.md) on the same port, for Open WebUI, editors
// and the `ollama` client libraries:
//   GET /api/version, GET /api/tags, POST /api/show,
//   POST /api/generate, POST /api/chat   NDJSON streaming by default, "stream": false for one
//                                        object; "options" (temperature, top_p, top_k, min_p,
//                                        num_predict, seed, stop, repeat_penalty, repeat_last_n,
//                                        presence_penalty, frequency_penalty), "format" ("json"
//                                        or a JSON schema, enforced), "tools" on /api/chat.
// Requests are turned into the OpenAI chat/completions shape and read by request_from_json, so
// every rule (and every error message) is the same; errors come back as {"error": "..."}.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "api/answer_format.h"

namespace herd::api {

// POST /api/chat and /api/generate bodies as a CompletionRequest. ApiError(400) when malformed.
CompletionRequest parse_ollama_chat(std::string_view body);
CompletionRequest parse_ollama_generate(std::string_view body);
// /api/generate with no prompt only loads the model (Ollama answers done, "load").
bool ollama_is_load_only(std::string_view body);

// What GET /api/tags and POST /api/show say of the model. `details`: Backend::model_details().
nlohmann::json ollama_tags(const std::string& model_id, const nlohmann::json& details);
nlohmann::json ollama_show(const std::string& model_id, const nlohmann::json& details,
                           std::int32_t n_ctx);

class OllamaFormat : public AnswerFormat {
 public:
  // `chat`: /api/chat ("message") or /api/generate ("response").
  OllamaFormat(bool chat, std::string model);

  const char* stream_content_type() const override { return "application/x-ndjson"; }
  std::string piece(std::string_view text) override;
  std::string end(const Answer& answer, const engine::GenerationStats& stats, bool held) override;
  std::string stream_error(std::string_view message) override;
  nlohmann::json whole(const Answer& answer, const engine::GenerationStats& stats) override;

 private:
  nlohmann::json line(std::string_view text) const;  // a chunk with this text, done: false
  nlohmann::json last(const Answer& answer, const engine::GenerationStats& stats) const;

  bool chat_;
  std::string model_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace herd::api
