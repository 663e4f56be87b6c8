#include "api/http_handling.h"

#include <fmt/format.h>

namespace herd::api {

using nlohmann::json;

void send_error(httplib::Response& res, ErrorStyle style, int status, std::string_view message,
                std::string_view type, std::string_view param, std::string_view code,
                int retry_after_s) {
  res.status = status;
  if (retry_after_s > 0) res.set_header("Retry-After", std::to_string(retry_after_s));
  res.set_content(error_json(style, status, message, type, param, code).dump(),
                  "application/json");
}

const char* error_type(int status) {
  if (status == 401) return "authentication_error";
  if (status == 404) return "not_found_error";
  if (status == 503) return "service_unavailable";
  return status >= 500 ? "server_error" : "invalid_request_error";
}

namespace {

bool split_host_port(const std::string& text, std::string& host, int& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  host = text.substr(0, colon);
  port = std::atoi(text.c_str() + colon + 1);
  return port > 0 && port < 65536;
}

}  // namespace

void forward(const httplib::Request& req, httplib::Response& res, const std::string& upstream) {
  std::string host;
  int port = 0;
  if (!split_host_port(upstream, host, port))
    throw ApiError(503, "no coordinator API address known yet; retry shortly",
                   "service_unavailable");
  httplib::Headers headers;
  if (req.has_header("Authorization"))
    headers.emplace("Authorization", req.get_header_value("Authorization"));
  if (req.method == "GET") {
    httplib::Client client(host, port);
    client.set_read_timeout(600, 0);
    auto r = client.Get(req.path.c_str(), headers);
    if (!r)
      throw ApiError(502,
                     fmt::format("the coordinator's API at {} does not answer: {}", upstream,
                                 httplib::to_string(r.error())),
                     "server_error");
    res.status = r->status;
    res.set_content(r->body, r->get_header_value("Content-Type"));
    return;
  }
  const std::string path = req.path;
  const std::string body = req.body;
  res.set_header("Cache-Control", "no-cache");
  // The status is sent before the coordinator answers: an error from it arrives as the body (an
  // SSE "data: {error}" line when the client asked for a stream).
  res.set_chunked_content_provider("text/event-stream", [host, port, path, body, headers, upstream](
                                                            std::size_t, httplib::DataSink& sink) {
    httplib::Client client(host, port);
    client.set_read_timeout(600, 0);
    httplib::Request r;
    r.method = "POST";
    r.path = path;
    r.headers = headers;
    r.body = body;
    r.set_header("Content-Type", "application/json");
    r.content_receiver = [&](const char* data, std::size_t n, std::uint64_t, std::uint64_t) {
      return sink.write(data, n);
    };
    auto result = client.send(r);
    if (!result) {
      const std::string e =
          sse_event(error_body(fmt::format("the coordinator's API at {} does not answer: {}",
                                           upstream, httplib::to_string(result.error())),
                               "server_error"));
      sink.write(e.data(), e.size());
    }
    sink.done();
    return true;
  });
}

}  // namespace herd::api
