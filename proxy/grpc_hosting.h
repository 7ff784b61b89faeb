#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio/io_context.hpp>

#include "common/grpc/health_service.h"
#include "common/grpc/service_registry.h"
#include "common/result.h"
#include "common/stats.h"
#include "proxy/grpc/grpc_server.h"

namespace portcullis::proxy {

// GrpcHosting owns the process's gRPC servers (ext_authz, SDS, the Workload API, ...): each is a
// GrpcServer with its own address, limits and ServiceRegistry, plus a grpc.health.v1.Health
// service in that registry. The Server drives them all together:
//
//   GrpcHosting hosting(stats);
//   grpc::ServiceRegistry registry;
//   MyService::register_with(service, registry);
//   hosting.add({.name = "sds", .address = ..., .limits = ...}, std::move(registry), {"my.pkg.Service"});
//   hosting.bind();           // at startup: a failure is a startup failure
//   hosting.start(loops);     // the workers' loops; health -> SERVING
//   hosting.drain();          // SIGTERM or /drain_listeners: health -> NOT_SERVING, GOAWAY
//   hosting.stop();           // before the workers stop
//
// Threading: every method runs on the main thread. add() before bind(); bind() before start().
// The servers' socket files are removed when the hosting is destroyed (after the workers stopped).
class GrpcHosting {
 public:
  explicit GrpcHosting(StatsStore& stats) : stats_(stats) {}
  ~GrpcHosting() = default;
  GrpcHosting(const GrpcHosting&) = delete;
  GrpcHosting& operator=(const GrpcHosting&) = delete;

  // add creates the server `options.name` (stats grpc_server.<name>.*) serving `registry`, into
  // which it registers Health. `health_services` are the service names Health reports besides
  // the overall "" (all NOT_SERVING until start). Errors: a duplicate name, a registry that
  // already has Health.
  Status add(GrpcServerOptions options, grpc::ServiceRegistry registry, std::vector<std::string> health_services);
  // bind binds every added server that is not bound yet and logs its address; the first failure
  // names the server and stops (servers bound so far stay bound, and are closed on destruction).
  Status bind();
  // start serves every server on `loops` and reports SERVING.
  void start(const std::vector<asio::io_context*>& loops);
  // drain reports NOT_SERVING, stops accepting and sends GOAWAY; in-flight calls finish.
  void drain();
  // stop closes every server's connections now (open calls end CANCELLED). Idempotent.
  void stop();

  bool empty() const { return servers_.empty(); }
  // bound_address of the server `name` ("ip:port" or the socket path); "" if unknown or unbound.
  std::string bound_address(std::string_view name) const;
  // health of the server `name`, or nullptr.
  grpc::HealthService* health(std::string_view name) const;
  // server `name`, or nullptr (e.g. to rotate its TLS context).
  GrpcServer* server(std::string_view name) const;

 private:
  struct Hosted {
    std::string name;
    std::unique_ptr<GrpcServer> server;
    std::shared_ptr<grpc::HealthService> health;
    bool bound = false;
  };
  void set_health(grpc::HealthService::ServingStatus status);

  StatsStore& stats_;
  std::vector<Hosted> servers_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace portcullis::proxy
