#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace portcullis::grpc {

// Metadata is a call's custom headers or trailers in arrival order: lowercase names, values as
// sent (`-bin` values still base64). Pseudo-headers and the call-definition headers the transport
// consumes (te, content-type, grpc-timeout, grpc-encoding, ...) are not in it.
using Metadata = std::vector<std::pair<std::string, std::string>>;

// Executor runs tasks on one event loop, in order. post() is safe from any thread; the task runs
// later on the loop (never inline). Tasks posted after the loop stopped are destroyed unrun.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual void post(std::function<void()> task) = 0;
};

// PeerCredentials are the kernel's view of a Unix-socket peer, taken once at accept time
// (SO_PEERCRED). They name the process that connect()ed, which may have exited since.
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// TlsPeer is the verified X.509-SVID of an mTLS peer: the values of mtls::PeerIdentity, copied
// because common/ may not depend on mtls/.
struct TlsPeer {
  std::string spiffe_id;
  std::string trust_domain;
  std::string serial;     // leaf serial, lowercase hex
  int64_t not_after = 0;  // leaf expiry, Unix seconds
  std::vector<std::string> attested_claims;  // the leaf's attested-claims extension, sorted
};

// PeerInfo describes the connection a call arrived on. One instance per connection, shared by
// its calls; immutable. Owns the pidfd (closed with the last reference).
struct PeerInfo {
  enum class Transport { kTcp, kUnix };

  Transport transport = Transport::kTcp;
  std::string address;        // "ip:port", "[v6]:port", or the Unix socket path we listen on
  std::string local_address;  // our side, same forms
  std::optional<PeerCredentials> credentials;  // Unix sockets only
  // pidfd refers to the peer process (SO_PEERPIDFD, Linux >= 6.5): stable across pid reuse, and
  // pollable for exit. -1 when unavailable (TCP, older kernels).
  int pidfd = -1;
  std::optional<TlsPeer> tls;  // set when the connection is mTLS and the peer's SVID verified

  PeerInfo() = default;
  PeerInfo(const PeerInfo&) = delete;
  PeerInfo& operator=(const PeerInfo&) = delete;
  ~PeerInfo();
};

// ServerCallContext is what a handler knows about its call. Built by the transport before the
// handler runs; immutable afterwards, so it may be read from the call's loop at any time while
// the call object lives.
struct ServerCallContext {
  std::string method;  // full path, e.g. "/envoy.service.auth.v3.Authorization/Check"
  std::string authority;
  Metadata metadata;
  // deadline from `grpc-timeout`; the transport ends the call with DEADLINE_EXCEEDED when it
  // passes (on_done fires), so handlers need not watch it themselves.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  std::shared_ptr<const PeerInfo> peer;
  // executor runs tasks on the loop that owns this call. A service thread (e.g. a rotation
  // watcher) that wants to write to a stream posts a task here; see ServerWriter::post.
  std::shared_ptr<Executor> executor;

  // header returns the first value of a metadata entry (name in lowercase), or nullptr.
  const std::string* header(std::string_view name) const {
    for (const auto& [k, v] : metadata) {
      if (k == name) return &v;
    }
    return nullptr;
  }
  // header_count says how many entries carry `name` (the Workload API wants exactly one).
  size_t header_count(std::string_view name) const {
    size_t n = 0;
    for (const auto& entry : metadata) n += entry.first == name;
    return n;
  }
};

}  // namespace portcullis::grpc
