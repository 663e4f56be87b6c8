// Anthropic's Messages API (docs.anthropic.com/en/api/messages) on the same port, for Claude
// clients and agent frameworks: POST /v1/messages with system, multi-turn content blocks (text,
// tool_use, tool_result), max_tokens, stop_sequences, temperature, top_p, top_k, tools and
// tool_choice (auto, any, tool, none), and streaming as Anthropic's named events
// (message_start, content_block_start, content_block_delta, content_block_stop, message_delta,
// message_stop). The key may come as "x-api-key". Requests are turned into the OpenAI chat shape
// and read by request_from_json; errors are {"type": "error", "error": {"type", "message"}}.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "api/answer_format.h"

namespace herd::api {

// ApiError(400) when malformed.
CompletionRequest parse_anthropic_messages(std::string_view body);

class AnthropicFormat : public AnswerFormat {
 public:
  AnthropicFormat(std::string id, std::string model) : id_(std::move(id)), model_(std::move(model)) {}

  void set_prompt_tokens(int n) override { prompt_tokens_ = n; }
  std::string start(bool held) override;
  std::string piece(std::string_view text) override;
  std::string end(const Answer& answer, const engine::GenerationStats& stats, bool held) override;
  std::string stream_error(std::string_view message) override;
  nlohmann::json whole(const Answer& answer, const engine::GenerationStats& stats) override;

 private:
  nlohmann::json message(const Answer* answer, const engine::GenerationStats* stats) const;

  std::string id_;
  std::string model_;
  int prompt_tokens_ = 0;
};

}  // namespace herd::api
