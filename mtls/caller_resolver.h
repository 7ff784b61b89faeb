#pragma once

#include <functional>

#include "common/grpc/call_context.h"
#include "mtls/svid_store.h"

namespace portcullis::mtls {

// CallerResolver turns the peer of a gRPC call (Workload API, SDS) into the CallerInfo a store's
// for_caller() needs. The default (no resolver) copies SO_PEERCRED only, which is all a static
// store looks at; an attested identity installs one that attests the peer's pidfd through the
// kernel and makes sure the authority has issued that workload's SVIDs before it returns.
// Runs on the worker thread that serves the call; bounded in time by its installer.
using CallerResolver = std::function<CallerInfo(const grpc::ServerCallContext&)>;

// credentials_caller is the default resolver: pid/uid/gid from SO_PEERCRED, no selectors.
inline CallerInfo credentials_caller(const grpc::ServerCallContext& context) {
  CallerInfo caller;
  if (context.peer && context.peer->credentials) {
    caller.pid = context.peer->credentials->pid;
    caller.uid = context.peer->credentials->uid;
    caller.gid = context.peer->credentials->gid;
  }
  return caller;
}

}  // namespace portcullis::mtls
