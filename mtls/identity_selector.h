#pragma once

#include <sys/socket.h>

#include <functional>
#include <memory>
#include <optional>

#include "common/result.h"
#include "mtls/svid_store.h"
#include "mtls/tls_context.h"

namespace portcullis::mtls {

// ConnectionContext is what the proxy knows of an accepted connection when it needs a TLS context
// for it: the accepted (downstream) socket and its addresses, which side of the proxy the context
// serves, and for listener contexts the upstream endpoint the connection is headed for. Borrowed
// for one call; the fd stays owned by the proxy.
struct ConnectionContext {
  enum class Side {
    kListener,  // the listener's own (server) TLS: the local workload is the upstream's listener
    kCluster,   // the upstream (client) TLS: the local workload is the downstream caller
  };
  Side side = Side::kListener;
  int fd = -1;
  sockaddr_storage local{};
  sockaddr_storage remote{};
  std::optional<sockaddr_storage> upstream;  // kListener: the cluster endpoint it will be sent to
};

// CallerLookup identifies the local workload a connection acts for (kernel attestation fills it:
// kCluster → the process on the other end of the accepted socket; kListener → the process
// listening on `upstream`). nullopt: no process could be attested. Called on worker threads,
// once per connection that uses the `default` SVID; must be thread-safe and bounded in time.
using CallerLookup = std::function<std::optional<CallerInfo>(const ConnectionContext&)>;

// IdentitySelector picks the TLS context of one listener or cluster per connection, for contexts
// whose certificate comes from the built-in identity. Thread-safe; called on every worker.
class IdentitySelector {
 public:
  virtual ~IdentitySelector() = default;
  // context_for returns the context this connection must use, or an error whose message starts
  // with the reason an audit record carries ("unattested caller: ...") when it must be refused.
  virtual Result<std::shared_ptr<const TlsContext>> context_for(const ConnectionContext& connection) = 0;
  // per_connection says whether context_for looks at the connection; when false the proxy skips
  // gathering its addresses (two syscalls per connection) and passes only the side.
  virtual bool per_connection() const { return true; }
};

}  // namespace portcullis::mtls
