#include "cluster/node.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <thread>

#include "cluster/placement/link_probe.h"
#include "cluster/node_impl.h"
#include "cluster/placement/placement.h"
#include "cluster/transport/udp_socket.h"
#include "util/cpu_features.h"
#include "util/process_memory.h"
#include "util/error.h"
#include "util/log.h"
#include "util/memory_bandwidth.h"

namespace herd::cluster {

using nlohmann::json;

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

std::string hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "node";
  return buf;
}

std::string sanitize_id(std::string id) {
  for (char& c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '-';
  }
  return id.substr(0, 64);
}

json http_result(httplib::Result& r, const std::string& what) {
  if (!r) fail("{}: no answer ({})", what, httplib::to_string(r.error()));
  if (r->status != 200) fail("{}: HTTP {}: {}", what, r->status, r->body.substr(0, 300));
  json j = json::parse(r->body, nullptr, false);
  if (j.is_discarded()) fail("{}: the answer is not JSON", what);
  return j;
}

}  // namespace

json post_signed(const HttpAuth& auth, const std::string& host, int port, const std::string& path,
                 const json& body) {
  httplib::Client client(host, port);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(30, 0);
  auto r = client.Post(path.c_str(), auth.sign("POST", path), body.dump(), "application/json");
  return http_result(r, fmt::format("POST http://{}:{}{}", host, port, path));
}

json get_signed(const HttpAuth& auth, const std::string& host, int port, const std::string& path) {
  httplib::Client client(host, port);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(30, 0);
  auto r = client.Get(path.c_str(), auth.sign("GET", path));
  return http_result(r, fmt::format("GET http://{}:{}{}", host, port, path));
}

std::uint64_t parse_byte_size(const std::string& text) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    fail_argument("'{}' is not a size: write e.g. 2G, 512M or 1073741824", text);
  }
  std::string unit = text.substr(used);
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();
  if (unit.size() > 1 && unit.back() == 'I') unit.pop_back();
  double scale = 1;
  if (unit == "K")
    scale = 1024.0;
  else if (unit == "M")
    scale = 1024.0 * 1024;
  else if (unit == "G")
    scale = 1024.0 * 1024 * 1024;
  else if (unit == "T")
    scale = 1024.0 * 1024 * 1024 * 1024;
  else if (!unit.empty() && unit != "B")
    fail_argument("'{}': unknown unit '{}' (use K, M, G or T)", text, text.substr(used));
  if (!(value >= 0) || !std::isfinite(value)) fail_argument("'{}' is not a positive size", text);
  return static_cast<std::uint64_t>(value * scale);
}

void put_coordinator_first(Plan& plan, const std::string& coordinator_id,
                           const std::vector<std::uint64_t>& layer_bytes,
                           std::uint64_t usable_bytes) {
  HERD_CHECK(!plan.stages.empty());
  auto& stages = plan.stages;
  if (stages[0].node_id == coordinator_id) return;
  for (std::size_t i = 1; i < stages.size(); ++i) {
    if (stages[i].node_id != coordinator_id) continue;
    // Swap which node runs stage 0 and stage i, when each then still fits.
    if (stages[0].total_bytes > stages[i].usable_bytes ||
        stages[i].total_bytes > stages[0].usable_bytes)
      fail(
          "placement put the coordinator '{}' on stage {}, and it cannot swap with stage 0 "
          "(memory): "
          "give the coordinator more --memory-limit",
          coordinator_id, i);
    std::swap(stages[0].node_id, stages[i].node_id);
    std::swap(stages[0].usable_bytes, stages[i].usable_bytes);
    stages[0].reason += "; coordinator (embeds the tokens)";
    return;
  }
  // The coordinator is not in the plan: it takes layer 0 (it holds the file anyway).
  Stage first;
  first.node_id = coordinator_id;
  first.first_layer = 0;
  first.last_layer = 1;
  first.weight_bytes = layer_bytes.empty() ? 0 : layer_bytes[0];
  first.usable_bytes = usable_bytes;
  first.reason = "coordinator: embeds the tokens (layer 0)";
  if (stages[0].last_layer - stages[0].first_layer <= 1) {
    stages[0] = first;
  } else {
    stages[0].first_layer = 1;
    stages.insert(stages.begin(), first);
  }
}

NodeInfo Node::describe_self() const {
  NodeInfo self;
  self.id = id_;
  self.name = options_.name.empty() ? id_ : options_.name;
  self.address = {options_.host, static_cast<std::uint16_t>(options_.api_port),
                  static_cast<std::uint16_t>(options_.cluster_port)};
  std::uint64_t usable = options_.memory_limit;
  if (usable == 0) {
    const std::uint64_t avail = available_memory_bytes();
    usable = avail > (std::uint64_t{512} << 20) ? avail - (std::uint64_t{512} << 20) : avail;
  }
  self.resources.usable_memory_bytes = usable;
  self.resources.threads = impl_->pool->size();
  self.resources.cpu_features = cpu_feature_string();
  self.resources.cpu = cpu_model_name();
  // A short measurement: placement needs each node's speed, not a precise figure. Nodes that
  // start together on one machine disturb each other's runs (a 4x spread was seen with four
  // nodes on two cores), so the best of a few rounds a little apart counts.
  double gb_per_s = 0.1;
  for (int round = 0; round < 4; ++round) {
    if (round > 0) std::this_thread::sleep_for(std::chrono::milliseconds(30));
    gb_per_s = std::max(gb_per_s, measure_memory_bandwidth(*impl_->pool, std::size_t{32} << 20, 3)
                                      .read_gb_per_s);
  }
  self.resources.profile.memory_gb_per_s = gb_per_s;
  self.resources.profile.matvec_gflops = 1.0;
  if (holds_model()) self.model = model_file_name();
  self.live.rss_bytes = resident_bytes();
  return self;
}

Node::Node(NodeOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {}

Node::~Node() {
  stop();
}

bool Node::failed() const {
  std::lock_guard lock(mutex_);
  return !failure_.empty();
}

std::string Node::status() const {
  std::lock_guard lock(mutex_);
  if (!failure_.empty()) return "failed: " + failure_;
  if (ready_ && !impl_->recovering.empty()) return "ready (" + impl_->recovering + ")";
  if (ready_) return "ready";
  return status_;
}

void Node::set_failed(const std::string& why) {
  log::error("node {}: {}", id_, why);
  std::lock_guard lock(mutex_);
  failure_ = why;
}

std::string Node::model_id() const {
  return std::filesystem::path(options_.model_path).stem().string();
}

nlohmann::json Node::model_details() const {
  if (!file_) return nlohmann::json::object();
  const auto& meta = file_->metadata();
  return {{"architecture", meta.get_string("general.architecture").value_or("")},
          {"name", meta.get_string("general.name").value_or(model_id())},
          {"file_bytes", file_->mapping() ? file_->mapping()->size() : 0}};
}

std::string Node::model_file_name() const {
  return std::filesystem::path(options_.model_path).filename().string();
}

engine::Pipeline& Node::pipeline() {
  HERD_CHECK(ready_);
  std::lock_guard lock(mutex_);
  if (impl_->cluster_pipeline) return *impl_->cluster_pipeline;
  HERD_CHECK(impl_->local != nullptr);
  return *impl_->local;
}

engine::SchedulerOptions Node::scheduling() const {
  engine::SchedulerOptions o;
  o.max_running = impl_->n_seqs;
  o.batch_tokens = options_.batch_tokens;
  o.max_waiting = options_.max_queue >= 0 ? options_.max_queue : 2 * impl_->n_seqs;
  return o;
}

std::optional<Plan> Node::placement() const {
  std::lock_guard lock(mutex_);
  return impl_->plan;
}

void Node::start() {
  const std::string port_text = std::to_string(options_.cluster_port);
  id_ = sanitize_id(options_.id.empty() ? hostname() + "-" + port_text : options_.id);
  clustered_ =
      !holds_model() || !options_.peers.empty() || options_.multicast || options_.wait_nodes > 1;
  impl_->pool = std::make_unique<ThreadPool>(
      options_.threads > 0 ? options_.threads : ThreadPool::default_thread_count());
  if (holds_model()) {
    file_ = std::make_shared<const gguf::File>(gguf::File::open(options_.model_path));
    tokenizer_ = model::Tokenizer::from_gguf(file_->metadata());
    chat_ = std::make_unique<model::ChatTemplate>(model::ChatTemplate::for_model(
        file_->metadata().get_string("tokenizer.chat_template").value_or(""), *tokenizer_));
  }
  if (!clustered_) return start_local();
  start_cluster();
}

void Node::start_local() {
  impl_->self = describe_self();
  model_ = model::Model::load(file_);
  const int train = model_->hparams().n_ctx_train;
  impl_->n_ctx = options_.n_ctx > 0 ? options_.n_ctx : std::min(train > 0 ? train : 4096, 4096);
  std::uint64_t weight_bytes = model_->embedding_bytes() + model_->head_bytes();
  for (int il = 0; il < model_->n_layer(); ++il) weight_bytes += model_->layer_bytes(il);
  impl_->n_seqs = options_.parallel > 0
                      ? options_.parallel
                      : default_parallel(weight_bytes,
                                         model_->kv_bytes_per_token_per_layer() *
                                             static_cast<std::uint64_t>(model_->n_layer()) *
                                             static_cast<std::uint64_t>(impl_->n_ctx),
                                         options_.memory_limit > 0 ? options_.memory_limit
                                                                   : available_memory_bytes());
  impl_->local = std::make_unique<engine::LocalPipeline>(model_, impl_->n_ctx, *impl_->pool,
                                                         impl_->n_seqs);
  coordinating_ = true;
  ready_ = true;
  log::info("node {}: serving {} alone ({} layers, context {}, {} sequences at once)", id_,
            options_.model_path, model_->n_layer(), impl_->n_ctx, impl_->n_seqs);
}

std::optional<std::string> Node::coordinator_api() const {
  if (is_coordinator() || !impl_->membership) return std::nullopt;
  std::lock_guard lock(mutex_);
  // A holder named coordinator but not serving yet (taking over): nobody to forward to.
  if (holds_model() && impl_->membership->coordinator() == id_) return std::nullopt;
  const Member* c = impl_->membership->find(impl_->membership->coordinator());
  if (!c || c->info.model.empty()) {
    // Our table may not list the coordinator yet (its first heartbeat is up to a second away)
    // while it already gave us our layers: its assignment says where its API is.
    if (impl_->assignment && impl_->assignment->coordinator_api_port > 0)
      return fmt::format("{}:{}", impl_->assignment->coordinator_host,
                         impl_->assignment->coordinator_api_port);
    return std::nullopt;
  }
  return fmt::format("{}:{}", c->info.address.host, c->info.address.api_port);
}

void Node::send_leave(const std::string& reason) {
  if (!impl_->discovery || !impl_->secret) return;
  Message leave;
  leave.type = MessageType::kLeave;
  leave.node.id = id_;
  leave.seq = ++impl_->seq;
  leave.reason = reason;
  impl_->discovery->broadcast(seal(leave, *impl_->secret, wall_ms()));
}

void Node::announce_leave() {
  if (leaving_.exchange(true)) return;
  log::info("node {}: leaving the cluster (its layers move to the others)", id_);
  send_leave("shutting down");
}

bool Node::serving_stage() const {
  std::lock_guard lock(mutex_);
  return impl_->worker.state == "serving";
}

void Node::stop() {
  if (stopping_.exchange(true)) return;
  impl_->leave_stage = true;
  impl_->cv.notify_all();
  if (impl_->setup_thread.joinable()) impl_->setup_thread.join();
  if (impl_->cluster_pipeline) impl_->cluster_pipeline->shutdown();
  if (!leaving_) send_leave("shutting down");
  impl_->http.stop();
  if (impl_->http_thread.joinable()) impl_->http_thread.join();
  if (impl_->control_thread.joinable()) impl_->control_thread.join();
  if (impl_->stage_thread.joinable()) impl_->stage_thread.join();
  impl_->cluster_pipeline.reset();
  if (impl_->reducer)
    log::info("node {}: {} all-reduces took {:.3f} s (exchange and waiting for other ranks)", id_,
              impl_->reducer->reductions(), impl_->reducer->seconds());
  impl_->reducer.reset();
  impl_->transport.reset();
}

}  // namespace herd::cluster
