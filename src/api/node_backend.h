// The API's view of a herd node (cluster/node.h): completions run on the node's pipeline once the
// node is ready; the cluster view and per-stage timings come from its member table and placement.
#pragma once

#include <memory>
#include <mutex>

#include "api/backend.h"
#include "cluster/node.h"

namespace herd::api {

class NodeBackend : public Backend {
 public:
  explicit NodeBackend(cluster::Node& node) : node_(node) {}

  std::string model_id() const override { return node_.model_id(); }
  std::string model_file() const override { return node_.model_file_name(); }
  nlohmann::json model_details() const override { return node_.model_details(); }
  std::int32_t n_ctx() const override;
  bool ready() const override { return node_.ready(); }
  std::string status_text() const override { return node_.status(); }
  std::vector<std::int32_t> prepare(const CompletionRequest& request) override;
  std::shared_ptr<engine::Ticket> submit(const std::vector<std::int32_t>& prompt,
                                         const engine::GenerationParams& params) override;
  std::shared_ptr<const engine::TokenConstraint> json_constraint(
      const grammar::Schema& schema) override {
    return inner().json_constraint(schema);
  }
  std::optional<engine::SchedulerMetrics> scheduler_metrics() const override;
  void stop() override;
  void stop_admitting() override;
  bool idle() const override;
  nlohmann::json cluster_view() const override { return node_.cluster_view(); }
  std::vector<StageTiming> stage_timings() const override;

 private:
  PipelineBackend& inner();

  cluster::Node& node_;
  mutable std::mutex mutex_;
  std::unique_ptr<PipelineBackend> inner_;
  bool stopped_ = false;
  bool admitting_ = true;  // made when the node is first ready
};

}  // namespace herd::api
