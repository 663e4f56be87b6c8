#include <fmt/format.h>

#include "api/backend.h"
#include "api/tool_calls.h"
#include "util/error.h"

namespace herd::api {

PipelineBackend::PipelineBackend(std::string model_id, std::string model_file,
                                 const model::Tokenizer& tokenizer, const model::ChatTemplate& chat,
                                 engine::Pipeline& pipeline, engine::SchedulerOptions scheduling,
                                 std::function<nlohmann::json()> cluster_view,
                                 std::function<std::vector<StageTiming>()> stage_timings,
                                 engine::PipelineRecovery* recovery)
    : model_id_(std::move(model_id)),
      model_file_(std::move(model_file)),
      tokenizer_(tokenizer),
      chat_(chat),
      n_ctx_(pipeline.n_ctx()),
      cluster_view_(std::move(cluster_view)),
      stage_timings_(std::move(stage_timings)),
      scheduler_(tokenizer, pipeline, scheduling, engine::Scheduler::Clock::now, recovery) {
  scheduler_.start();
}

std::shared_ptr<const engine::TokenConstraint> Backend::json_constraint(const grammar::Schema&) {
  throw ApiError(400, "this server cannot constrain answers to a JSON schema",
                 "invalid_request_error", "response_format");
}

std::shared_ptr<const engine::TokenConstraint> PipelineBackend::json_constraint(
    const grammar::Schema& schema) {
  std::call_once(pieces_once_,
                 [&] { pieces_ = std::make_shared<const grammar::TokenPieces>(tokenizer_); });
  return std::make_shared<const grammar::JsonConstraint>(schema, pieces_);
}

namespace {

// The chat prompt: with tools, or tool calls and results among the messages, the model's own
// template is given them (Jinja), or the Hermes format tells a built-in format about them.
std::string render_chat(const model::ChatTemplate& chat, const CompletionRequest& request) {
  bool tooling = !request.tools.empty();
  for (const auto& m : request.messages_json)
    tooling = tooling || m.contains("tool_calls") || m.value("role", "") == "tool";
  if (!tooling) return chat.render(request.messages, /*add_generation_prompt=*/true);
  const nlohmann::ordered_json tools = request.tool_choice == ToolChoice::kNone
                                           ? nlohmann::ordered_json::array()
                                           : request.tools;
  if (chat.uses_jinja()) {
    nlohmann::ordered_json extra = nlohmann::ordered_json::object();
    if (!tools.empty()) extra["tools"] = tools;
    return chat.render_json(request.messages_json, /*add_generation_prompt=*/true, &extra);
  }
  return chat.render(hermes_messages(request.messages_json, tools), /*add_generation_prompt=*/true);
}

}  // namespace

std::vector<std::int32_t> PipelineBackend::prepare(const CompletionRequest& request) {
  std::vector<std::int32_t> ids;
  try {
    if (request.kind == RequestKind::kChat) {
      const std::string text = render_chat(chat_, request);
      ids = tokenizer_.encode(text, request.params.add_special, /*parse_special=*/true);
    } else if (!request.prompt_ids.empty()) {
      ids = request.prompt_ids;
    } else {
      ids = tokenizer_.encode(request.prompt, request.params.add_special,
                              request.params.parse_special);
    }
  } catch (const InvalidArgument& e) {
    // e.g. the template's raise_exception("roles must alternate").
    throw ApiError(400,
                   fmt::format("the messages cannot be rendered with this model's chat "
                               "template: {}",
                               e.what()),
                   "invalid_request_error", "messages");
  }
  if (ids.empty())
    throw ApiError(400, "the prompt is empty after tokenization", "invalid_request_error",
                   "prompt");
  for (std::int32_t id : ids) {
    if (id < 0 || id >= tokenizer_.n_vocab())
      throw ApiError(
          400,
          fmt::format("token id {} is outside the vocabulary [0, {})", id, tokenizer_.n_vocab()),
          "invalid_request_error", "prompt");
  }
  const std::int64_t n_prompt = static_cast<std::int64_t>(ids.size());
  const std::int64_t max_tokens = request.params.max_tokens;
  if (n_prompt + std::max<std::int64_t>(max_tokens, 1) > n_ctx()) {
    throw ApiError(
        400,
        fmt::format(
            "this model's context is {} tokens, but the prompt has {} tokens{}: "
            "shorten the prompt{}",
            n_ctx(), n_prompt,
            max_tokens > 0 ? fmt::format(" and max_tokens asks for {} more", max_tokens) : "",
            max_tokens > 0 ? " or lower max_tokens" : ""),
        "invalid_request_error", "messages", "context_length_exceeded");
  }
  return ids;
}

std::shared_ptr<engine::Ticket> PipelineBackend::submit(const std::vector<std::int32_t>& prompt,
                                                        const engine::GenerationParams& params) {
  try {
    return scheduler_.submit(prompt, params);
  } catch (const engine::Overloaded& e) {
    ApiError error(429, e.what(), "rate_limit_exceeded", "", "server_busy");
    error.retry_after_s = e.retry_after_s;
    throw error;
  } catch (const engine::ShuttingDown& e) {
    throw ApiError(503, e.what(), "service_unavailable");
  }
}

}  // namespace herd::api
