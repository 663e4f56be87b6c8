#include "cluster/weights/weight_server.h"

#include <algorithm>

#include "cluster/placement/shard_plan.h"
#include "gguf/writer.h"
#include "util/error.h"
#include "util/log.h"

namespace herd::cluster {
namespace {

void send_error(httplib::Response& response, int status, const std::string& message) {
  response.status = status;
  response.set_content(nlohmann::json{{"error", message}}.dump(), "application/json");
}

int int_param(const httplib::Request& request, const char* name) {
  std::string v = request.get_param_value(name);
  try {
    std::size_t used = 0;
    int n = std::stoi(v, &used);
    if (used == v.size()) return n;
  } catch (const std::exception&) {
  }
  fail_argument("query parameter '{}' must be an integer, got '{}'", name, v);
}

}  // namespace

WeightServer::WeightServer(std::shared_ptr<const gguf::File> file,
                           std::shared_ptr<const FileDigest> digest, WeightServerOptions options)
    : file_(std::move(file)), digest_(std::move(digest)), options_(std::move(options)) {
  HERD_CHECK(file_ && digest_);
  n_layer_ = block_count(file_->metadata());
  gguf::Writer writer(file_->alignment());
  writer.copy_metadata(file_->metadata());
  std::vector<std::uint8_t> bytes = writer.to_bytes();
  metadata_gguf_.assign(bytes.begin(), bytes.end());
  metadata_sha256_ = sha256_hex(bytes);
  options_.chunk_bytes = std::max<std::size_t>(options_.chunk_bytes, 4096);
}

ShardManifest WeightServer::manifest(model::LayerRange range) const {
  ShardManifest m;
  m.model_hash = model_hash();
  m.range = range;
  m.n_layer = n_layer_;
  m.metadata_bytes = metadata_gguf_.size();
  m.metadata_sha256 = metadata_sha256_;
  for (const std::string& name : tensors_for_range(*file_, range, n_layer_)) {
    const gguf::TensorInfo& info = *file_->find_tensor(name);
    auto sum = digest_->tensor_sha256.find(name);
    HERD_CHECK(sum != digest_->tensor_sha256.end());
    m.tensors.push_back({info.name, info.type, info.dims, info.n_bytes, sum->second});
  }
  return m;
}

bool WeightServer::authorize(const httplib::Request& request, httplib::Response& response) const {
  std::string reason;
  if (!options_.verify || options_.verify(request, reason)) return true;
  log::warn("weight request {} from {} rejected: {}", request.path, request.remote_addr, reason);
  send_error(response, 401, "unauthorized: " + reason);
  return false;
}

void WeightServer::handle_manifest(const httplib::Request& request,
                                   httplib::Response& response) const {
  model::LayerRange range{int_param(request, "first"), int_param(request, "last")};
  std::string body = manifest_to_json(manifest(range)).dump();
  if (options_.response_auth) options_.response_auth->sign_response(request, body, response);
  response.set_content(body, "application/json");
}

void WeightServer::handle_tensor(const httplib::Request& request, httplib::Response& response) {
  const std::string name = request.matches[2];
  const gguf::TensorInfo* info = file_->find_tensor(name);
  if (!info) return send_error(response, 404, "the model has no tensor " + name);
  tensor_requests_.fetch_add(1);
  if (!request.ranges.empty()) ranged_requests_.fetch_add(1);
  const std::uint8_t* data = file_->tensor_data(*info);
  auto file = file_;  // keeps the mapping alive while the response streams
  response.set_content_provider(
      info->n_bytes, "application/octet-stream",
      [this, file, data, name, chunk_bytes = options_.chunk_bytes](
          std::size_t offset, std::size_t length, httplib::DataSink& sink) {
        std::size_t n = std::min(length, chunk_bytes);
        bool ok = true;
        if (options_.hook) {
          std::string chunk(reinterpret_cast<const char*>(data + offset), n);
          if (!options_.hook(name, offset, chunk)) return false;
          ok = sink.write(chunk.data(), chunk.size());
        } else {
          ok = sink.write(reinterpret_cast<const char*>(data + offset), n);
        }
        if (ok) bytes_sent_.fetch_add(n);
        return ok;
      });
}

void register_weight_routes(httplib::Server& server, std::shared_ptr<WeightServer> weights) {
  // Wraps a handler: authentication, the model hash, and errors turned into responses.
  auto route = [weights](auto handler) {
    return [weights, handler](const httplib::Request& request, httplib::Response& response) {
      if (!weights->authorize(request, response)) return;
      if (request.matches[1] != weights->model_hash()) {
        return send_error(response, 404,
                          "this coordinator serves model " + weights->model_hash() + ", not " +
                              std::string(request.matches[1]));
      }
      try {
        handler(*weights, request, response);
      } catch (const InvalidArgument& e) {
        send_error(response, 400, e.what());
      } catch (const Error& e) {
        send_error(response, 500, e.what());
      }
    };
  };
  server.Get(R"(/v1/weights/([0-9a-f]+)/manifest)",
             route([](WeightServer& w, const httplib::Request& q, httplib::Response& r) {
               w.handle_manifest(q, r);
             }));
  server.Get(R"(/v1/weights/([0-9a-f]+)/metadata)",
             route([](WeightServer& w, const httplib::Request&, httplib::Response& r) {
               r.set_content(w.metadata_gguf(), "application/octet-stream");
             }));
  server.Get(R"(/v1/weights/([0-9a-f]+)/tensors/([A-Za-z0-9_.\-]+))",
             route([](WeightServer& w, const httplib::Request& q, httplib::Response& r) {
               w.handle_tensor(q, r);
             }));
}

}  // namespace herd::cluster
