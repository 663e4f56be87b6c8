// What the HTTP server serves from: one model behind a scheduler (engine/scheduler.h) that runs
// many requests at once. The server knows nothing about
// whether the layers run here or across a cluster; the node object (cluster/node.h) decides.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "api/metrics.h"
#include "api/openai_schema.h"
#include "engine/generator.h"
#include "engine/pipeline.h"
#include "engine/scheduler.h"
#include "engine/ticket.h"
#include "grammar/json_constraint.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"

namespace herd::api {

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string model_id() const = 0;
  // The model's file name: also accepted as the request's "model".
  virtual std::string model_file() const { return ""; }
  // {"architecture", "name", "file_bytes"} of the model, as far as known (Ollama's /api/tags).
  virtual nlohmann::json model_details() const { return nlohmann::json::object(); }
  virtual std::int32_t n_ctx() const = 0;
  // False while the cluster is still forming (the API answers 503 meanwhile).
  virtual bool ready() const { return true; }
  virtual std::string status_text() const { return ready() ? "ready" : "starting"; }

  // Tokenizes the request (chat template applied) and checks it against the context. Throws
  // ApiError (400) for a prompt that, with max_tokens, does not fit, or ids outside the vocabulary.
  virtual std::vector<std::int32_t> prepare(const CompletionRequest& request) = 0;
  // Queues a generation; its text and result come through the ticket (cancel it when the
  // client goes away). ApiError 429 with retry_after_s when the queue is full.
  virtual std::shared_ptr<engine::Ticket> submit(const std::vector<std::int32_t>& prompt,
                                                 const engine::GenerationParams& params) = 0;
  // What makes an answer a JSON document of `schema` (constrained sampling). ApiError 400 where
  // the backend cannot constrain.
  virtual std::shared_ptr<const engine::TokenConstraint> json_constraint(
      const grammar::Schema& schema);
  // Queue, batches and latencies, once a scheduler runs.
  virtual std::optional<engine::SchedulerMetrics> scheduler_metrics() const { return {}; }
  // Stops generating (what runs or waits fails); call before the pipeline goes away.
  virtual void stop() {}
  // Graceful shutdown: new requests get 503, queued and running ones go on; idle() once none is
  // left.
  virtual void stop_admitting() {}
  virtual bool idle() const { return true; }

  // GET /v1/cluster: {"self", "coordinator", "members":[...], "placement":{...}}.
  virtual nlohmann::json cluster_view() const = 0;
  virtual std::vector<StageTiming> stage_timings() const { return {}; }
};

// A Backend over a Pipeline in this process (a LocalPipeline or the coordinator's ClusterPipeline).
class PipelineBackend : public Backend {
 public:
  // All three must outlive the backend, and `recovery` too (where the pipeline can be rebuilt
  // after a failure: engine/pipeline_recovery.h). `cluster_view` fills GET /v1/cluster. Starts
  // the scheduler's thread.
  PipelineBackend(std::string model_id, std::string model_file, const model::Tokenizer& tokenizer,
                  const model::ChatTemplate& chat, engine::Pipeline& pipeline,
                  engine::SchedulerOptions scheduling,
                  std::function<nlohmann::json()> cluster_view,
                  std::function<std::vector<StageTiming>()> stage_timings = {},
                  engine::PipelineRecovery* recovery = nullptr);

  std::string model_id() const override { return model_id_; }
  std::string model_file() const override { return model_file_; }
  std::int32_t n_ctx() const override { return n_ctx_; }
  std::vector<std::int32_t> prepare(const CompletionRequest& request) override;
  std::shared_ptr<engine::Ticket> submit(const std::vector<std::int32_t>& prompt,
                                         const engine::GenerationParams& params) override;
  std::shared_ptr<const engine::TokenConstraint> json_constraint(
      const grammar::Schema& schema) override;
  std::optional<engine::SchedulerMetrics> scheduler_metrics() const override {
    return scheduler_.metrics();
  }
  void stop() override { scheduler_.stop(); }
  void stop_admitting() override { scheduler_.stop_admitting(); }
  bool idle() const override { return scheduler_.idle(); }
  nlohmann::json cluster_view() const override { return cluster_view_(); }
  std::vector<StageTiming> stage_timings() const override {
    return stage_timings_ ? stage_timings_() : std::vector<StageTiming>{};
  }

 private:
  std::string model_id_;
  std::string model_file_;
  const model::Tokenizer& tokenizer_;
  const model::ChatTemplate& chat_;
  std::int32_t n_ctx_;
  std::function<nlohmann::json()> cluster_view_;
  std::function<std::vector<StageTiming>()> stage_timings_;
  std::once_flag pieces_once_;
  std::shared_ptr<const grammar::TokenPieces> pieces_;  // the vocabulary as bytes, read once
  engine::Scheduler scheduler_;
};

}  // namespace herd::api
