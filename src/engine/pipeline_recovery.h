// What a scheduler asks when its pipeline fails or could be better. A cluster implements it
// (cluster/node.h): when a node is lost it re-plans over the nodes still alive and builds a new
// pipeline; when a node joins and a faster plan exists, it asks for a quiet moment to move to it.
// The scheduler keeps every request's tokens, so after a change it rebuilds each running
// sequence's cache with one prefill of its prompt and the tokens generated so far, and goes on:
// a client sees its stream pause, never lose a token. engine/ stays unaware of the network.
#pragma once

#include <exception>

#include "engine/pipeline.h"

namespace herd::engine {

class PipelineRecovery {
 public:
  virtual ~PipelineRecovery() = default;

  // A better pipeline can be built now (a node joined), or the scheduler has none and one can
  // be built again (enough memory came back). The scheduler stops submitting, collects what is
  // in flight and then calls rebuild(nullptr). Thread-safe: also asked from API threads.
  virtual bool wants_rebuild() const = 0;

  // The pipeline to use from now on, after `failure` (null: a change at a quiet moment, nothing
  // in flight). Blocks while nodes load their layers. The pipeline used before may be destroyed
  // by the call. May return the current pipeline when nothing changed (only when failure is
  // null). Throws herd::Error when no pipeline can serve, saying what is missing: the requests
  // fail with it, new ones get it (HTTP 503) until wants_rebuild() says otherwise. The pipeline
  // returned keeps the first one's n_ctx() and n_vocab(); n_seqs() may be smaller.
  virtual Pipeline& rebuild(std::exception_ptr failure) = 0;
};

}  // namespace herd::engine
