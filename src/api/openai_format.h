// OpenAI's chat.completion / text_completion answers (whole, or streamed as chunks ending with
// [DONE]) as an AnswerFormat.
#pragma once

#include "api/answer_format.h"

namespace herd::api {

class OpenAIFormat : public AnswerFormat {
 public:
  OpenAIFormat(RequestKind kind, ResponseIds ids, bool include_usage)
      : kind_(kind), ids_(std::move(ids)), include_usage_(include_usage) {}

  std::string start(bool held) override;
  std::string piece(std::string_view text) override;
  std::string end(const Answer& answer, const engine::GenerationStats& stats, bool held) override;
  std::string stream_error(std::string_view message) override;
  nlohmann::json whole(const Answer& answer, const engine::GenerationStats& stats) override;

 private:
  RequestKind kind_;
  ResponseIds ids_;
  bool include_usage_;
};

}  // namespace herd::api
