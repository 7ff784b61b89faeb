#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/grpc/service_registry.h"
#include "grpc/health/v1/health.pb.h"

namespace portcullis::grpc {

// HealthService serves the standard grpc.health.v1.Health service: Check (unary; an unknown
// service name is NOT_FOUND) and Watch (server-streaming; the current status at once, then every
// change; an unknown name reports SERVICE_UNKNOWN and waits). The overall server is the empty
// name "", SERVING from the start. Every gRPC server can register one.
//
// Thread-safe: set_status may be called from any thread; watchers are written on their own loops.
class HealthService : public std::enable_shared_from_this<HealthService> {
 public:
  using ServingStatus = ::grpc::health::v1::HealthCheckResponse::ServingStatus;
  static constexpr const char* kCheckPath = "/grpc.health.v1.Health/Check";
  static constexpr const char* kWatchPath = "/grpc.health.v1.Health/Watch";

  static std::shared_ptr<HealthService> create();

  // set_status sets one service's status (adding it) and pushes it to its watchers.
  void set_status(const std::string& service, ServingStatus status);
  // set_all sets every known service, "" included (e.g. NOT_SERVING when the server drains).
  void set_all(ServingStatus status);
  ServingStatus status(const std::string& service) const;  // SERVICE_UNKNOWN if never set

  // register_with adds Check and Watch to a registry. The registry's handlers keep this alive.
  Status register_with(ServiceRegistry& registry);

 private:
  struct Watcher {
    ServerWriter<::grpc::health::v1::HealthCheckResponse> writer;
    std::string service;
    int last_sent = -1;  // touched only on the watcher's loop
  };
  HealthService() = default;
  void watch(const ::grpc::health::v1::HealthCheckRequest& request,
             ServerWriter<::grpc::health::v1::HealthCheckResponse> writer);
  void push(const std::shared_ptr<Watcher>& watcher);

  mutable std::mutex mu_;
  std::map<std::string, ServingStatus> statuses_;
  std::vector<std::shared_ptr<Watcher>> watchers_;
};

}  // namespace portcullis::grpc
