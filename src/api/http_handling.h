// What every route of the API server does around its work (server*.cpp, not a public API):
// errors in the API's own shape, and relaying a request to the coordinator's API.
#pragma once

#include <httplib.h>

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "api/answer_format.h"
#include "util/error.h"
#include "util/log.h"

namespace herd::api {

// Answers `status` with the error body of `style`.
void send_error(httplib::Response& res, ErrorStyle style, int status, std::string_view message,
                std::string_view type, std::string_view param = "", std::string_view code = "",
                int retry_after_s = 0);
// OpenAI's error type for an HTTP status.
const char* error_type(int status);

// Runs a handler, turning every exception into an error response in the API's own shape.
template <typename Fn>
void guarded(httplib::Response& res, ErrorStyle style, Fn&& fn) {
  try {
    fn();
  } catch (const ApiError& e) {
    send_error(res, style, e.status, e.what(), e.type, e.param, e.code, e.retry_after_s);
  } catch (const InvalidArgument& e) {
    send_error(res, style, 400, e.what(), "invalid_request_error");
  } catch (const Unavailable& e) {
    send_error(res, style, 503, e.what(), "service_unavailable");
  } catch (const nlohmann::json::exception& e) {
    // A field of the request with another JSON type than the API has (read with .value() or
    // .get<>() in an adapter): the client's mistake, not the server's.
    send_error(res, style, 400,
               std::string("a field of the request has the wrong JSON type: ") + e.what(),
               "invalid_request_error");
  } catch (const std::exception& e) {
    log::error("api: request failed: {}", e.what());
    send_error(res, style, 500, e.what(), "server_error");
  }
}

template <typename Fn>
void guarded(httplib::Response& res, Fn&& fn) {
  guarded(res, ErrorStyle::kOpenAI, std::forward<Fn>(fn));
}

// Forwards a request to the coordinator's API ("host:port") and relays its answer, streaming
// it through.
void forward(const httplib::Request& req, httplib::Response& res, const std::string& upstream);

}  // namespace herd::api
