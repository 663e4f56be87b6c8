// OpenAI's Responses API (platform.openai.com/docs/api-reference/responses) on the same port:
// POST /v1/responses with input (a string or a list of messages, function calls and their
// outputs), instructions, max_output_tokens, temperature, top_p, function tools and
// tool_choice, text.format (text, json_object, json_schema: enforced), streamed as its events
// (response.created, response.output_item.added, response.output_text.delta,
// response.function_call_arguments.delta, ..., response.completed). Stateless: no
// previous_response_id. Requests are turned into the chat shape and read by request_from_json.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "api/answer_format.h"

namespace herd::api {

// ApiError(400) when malformed.
CompletionRequest parse_responses_request(std::string_view body);

class ResponsesFormat : public AnswerFormat {
 public:
  ResponsesFormat(std::string id, std::string model, std::int64_t created)
      : id_(std::move(id)), model_(std::move(model)), created_(created) {}

  void set_prompt_tokens(int n) override { prompt_tokens_ = n; }
  std::string start(bool held) override;
  std::string piece(std::string_view text) override;
  std::string end(const Answer& answer, const engine::GenerationStats& stats, bool held) override;
  std::string stream_error(std::string_view message) override;
  nlohmann::json whole(const Answer& answer, const engine::GenerationStats& stats) override;

 private:
  nlohmann::json response(const Answer* answer, const engine::GenerationStats* stats) const;
  nlohmann::json output_items(const Answer& answer) const;
  std::string event(const char* type, nlohmann::json data);

  std::string id_;
  std::string model_;
  std::int64_t created_;
  int prompt_tokens_ = 0;
  int sequence_ = 0;
};

}  // namespace herd::api
