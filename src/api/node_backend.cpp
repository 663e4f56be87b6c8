#include "api/node_backend.h"

namespace herd::api {

PipelineBackend& NodeBackend::inner() {
  std::lock_guard lock(mutex_);
  if (stopped_) throw ApiError(503, "the server is shutting down", "service_unavailable");
  if (!node_.ready() || !node_.is_coordinator())
    throw ApiError(503, "the model is not ready yet (" + node_.status() + "); retry shortly",
                   "service_unavailable");
  if (!inner_) {
    inner_ = std::make_unique<PipelineBackend>(
        node_.model_id(), node_.model_file_name(), node_.tokenizer(), node_.chat_template(),
        node_.pipeline(), node_.scheduling(), [this] { return node_.cluster_view(); },
        std::function<std::vector<StageTiming>()>{}, node_.recovery());
    if (!admitting_) inner_->stop_admitting();
  }
  return *inner_;
}

std::int32_t NodeBackend::n_ctx() const {
  return node_.ready() && node_.is_coordinator() ? node_.n_ctx() : 0;
}

std::vector<std::int32_t> NodeBackend::prepare(const CompletionRequest& request) {
  return inner().prepare(request);
}

std::shared_ptr<engine::Ticket> NodeBackend::submit(const std::vector<std::int32_t>& prompt,
                                                    const engine::GenerationParams& params) {
  return inner().submit(prompt, params);
}

void NodeBackend::stop_admitting() {
  std::lock_guard lock(mutex_);
  if (inner_) inner_->stop_admitting();
  admitting_ = false;
}

bool NodeBackend::idle() const {
  std::lock_guard lock(mutex_);
  return !inner_ || inner_->idle();
}

void NodeBackend::stop() {
  std::lock_guard lock(mutex_);
  stopped_ = true;
  if (inner_) inner_->stop();
}

std::optional<engine::SchedulerMetrics> NodeBackend::scheduler_metrics() const {
  {
    std::lock_guard lock(mutex_);
    if (inner_) return inner_->scheduler_metrics();
    if (stopped_ || !node_.ready() || !node_.is_coordinator()) return {};
  }
  // The scheduler starts with the first request or the first look at it (the dashboard's).
  try {
    return const_cast<NodeBackend*>(this)->inner().scheduler_metrics();
  } catch (const ApiError&) {
    return {};  // stopped meanwhile
  }
}

std::vector<StageTiming> NodeBackend::stage_timings() const {
  std::vector<StageTiming> out;
  if (auto plan = node_.placement(); plan && plan->stages.size() > 1) {
    for (const auto& s : plan->stages)
      out.push_back({s.node_id, s.first_layer, s.last_layer, s.seconds_per_token});
  }
  return out;
}

}  // namespace herd::api
