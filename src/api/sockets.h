// Socket facts cpp-httplib does not give: whether the client of an HTTP request has gone away,
// and a listen backlog of a useful size.
//
// ConnectionProbe tells whether the client of an HTTP request has gone away while its request waits or
// generates. cpp-httplib (0.11) does not hand a handler its socket, so the probe finds it once
// by the connection's addresses and then polls it for a hang-up, without reading from it.
// A client that disconnects is noticed within one poll, not at the next write: a request queued
// behind others, or a non-streamed one, frees its place at once.
#pragma once

#include <string>

namespace herd::api {

class ConnectionProbe {
 public:
  // The socket whose local and peer ports are these (addresses as cpp-httplib gives them).
  ConnectionProbe(const std::string& local_addr, int local_port, const std::string& remote_addr,
                  int remote_port);
  // True once the peer closed or reset the connection. False when the socket was not found.
  bool closed() const;
  bool found() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Debian's cpp-httplib is a compiled library that listens with a backlog of 5: 64 clients
// connecting at once overflowed it and some lost their connection. Finds this process's socket
// listening on `port` and raises its backlog (Linux applies a second listen() to a listening
// socket). False when no such socket was found.
bool widen_listen_backlog(int port, int backlog);

}  // namespace herd::api
