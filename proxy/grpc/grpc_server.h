#pragma once

#include <memory>
#include <string>
#include <vector>

#include <asio/io_context.hpp>

#include "common/grpc/service_registry.h"
#include "common/result.h"
#include "common/stats.h"
#include "config/address.h"
#include "mtls/tls_context.h"
#include "proxy/grpc/grpc_server_limits.h"

namespace portcullis::proxy {

struct GrpcServerShared;
class ListenSocket;

// GrpcServerOptions configure one gRPC server: where it listens, its limits, and TLS.
struct GrpcServerOptions {
  std::string name;         // stats: grpc_server.<name>.*
  config::Address address;  // {pipe: {path, mode}} or {socket_address: {address, port_value}}
  GrpcServerLimits limits;
  // tls: null serves h2c (prior knowledge). Otherwise a server TlsContext whose config lists
  // "h2" in alpn_protocols; clients that do not negotiate h2 are closed. The verified peer SVID
  // reaches handlers as ServerCallContext::peer->tls.
  std::shared_ptr<const mtls::TlsContext> tls;
};

// GrpcServer serves a ServiceRegistry over HTTP/2 on the given event loops (the proxy's
// workers): every loop accepts on the shared listening socket and owns the connections it
// accepted. Lifecycle: create -> bind (socket exists, address known) -> start(loops) ->
// drain() and/or stop(). drain/stop are thread-safe and return at once; the work runs on the
// loops, so call them while the loops still exist (a Server: before stopping its workers).
// Destroying the server closes its socket and removes the Unix socket file it created; it does
// not touch the loops. Typical shutdown: drain(), wait up to the drain time, stop(), stop the
// workers, destroy the server.
class GrpcServer {
 public:
  static Result<std::unique_ptr<GrpcServer>> create(GrpcServerOptions options,
                                                    std::shared_ptr<const grpc::ServiceRegistry> registry,
                                                    StatsStore& stats);
  ~GrpcServer();

  Status bind();
  // bound_address is what clients dial (real port for port 0, or the socket path).
  const std::string& bound_address() const { return bound_address_; }
  void start(const std::vector<asio::io_context*>& loops);
  // drain stops accepting and sends GOAWAY on every connection (graceful: in-flight calls finish).
  void drain();
  // stop closes the listener and every connection now: open calls end with CANCELLED.
  void stop();
  // set_tls replaces the server certificate context for connections accepted from now on (a
  // rotated SVID); live connections keep the one they started with. Thread-safe, like drain().
  void set_tls(std::shared_ptr<const mtls::TlsContext> tls);

 private:
  struct Loop;
  GrpcServer(GrpcServerOptions options, std::shared_ptr<const GrpcServerShared> shared);

  GrpcServerOptions options_;
  std::shared_ptr<const GrpcServerShared> shared_;
  std::unique_ptr<ListenSocket> socket_;
  std::string bound_address_;
  std::vector<std::shared_ptr<Loop>> loops_;
};

}  // namespace portcullis::proxy
