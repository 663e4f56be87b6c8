// Error handling for herd: one exception family for everything a user or a peer can cause,
// HERD_CHECK for internal invariants (abort with file and line).
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace herd {

// Anything caused by input we do not control: files, requests, arguments, peers.
// The message names the problem and, where possible, what to do about it.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A malformed or truncated file (GGUF, tokenizer.json ...).
class FormatError : public Error {
 public:
  using Error::Error;
};

// A request or argument that is not acceptable (bad JSON, prompt longer than the context ...).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// The service cannot serve for now, through no fault of the request (a cluster whose surviving
// nodes cannot hold the model): HTTP 503. The message says what is missing.
class Unavailable : public Error {
 public:
  using Error::Error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void fail_format(fmt::format_string<Args...> format, Args&&... args) {
  throw FormatError(fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void fail_argument(fmt::format_string<Args...> format, Args&&... args) {
  throw InvalidArgument(fmt::format(format, std::forward<Args>(args)...));
}

[[noreturn]] inline void check_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "herd: internal invariant violated: %s at %s:%d\n", expr, file, line);
  std::abort();
}

}  // namespace herd

// For invariants of our own code only; never for input validation.
#define HERD_CHECK(cond)                                          \
  do {                                                            \
    if (!(cond)) ::herd::check_failed(#cond, __FILE__, __LINE__); \
  } while (0)
