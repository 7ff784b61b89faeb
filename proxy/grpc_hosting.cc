#include "proxy/grpc_hosting.h"

#include <spdlog/spdlog.h>

namespace portcullis::proxy {

using ServingStatus = grpc::HealthService::ServingStatus;

Status GrpcHosting::add(GrpcServerOptions options, grpc::ServiceRegistry registry,
                        std::vector<std::string> health_services) {
  for (const auto& h : servers_) {
    if (h.name == options.name) return make_error(ErrorCode::kInvalidArgument, "duplicate gRPC server '" + h.name + "'");
  }
  auto health = grpc::HealthService::create();
  health->set_status("", ::grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  for (const auto& s : health_services) health->set_status(s, ::grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  if (Status s = health->register_with(registry); !s.ok()) return s;
  std::string name = options.name;
  auto server = GrpcServer::create(std::move(options),
                                   std::make_shared<const grpc::ServiceRegistry>(std::move(registry)), stats_);
  if (!server.ok()) return server.error();
  servers_.push_back(Hosted{std::move(name), std::move(server.value()), std::move(health)});
  return {};
}

Status GrpcHosting::bind() {
  for (auto& h : servers_) {
    if (h.bound) continue;
    if (Status s = h.server->bind(); !s.ok()) {
      return make_error(ErrorCode::kUnavailable, "gRPC server '" + h.name + "': " + s.error().message);
    }
    h.bound = true;
    spdlog::info("gRPC server '{}' listening on {}", h.name, h.server->bound_address());
  }
  return {};
}

void GrpcHosting::start(const std::vector<asio::io_context*>& loops) {
  if (started_) return;
  started_ = true;
  for (auto& h : servers_) h.server->start(loops);
  set_health(::grpc::health::v1::HealthCheckResponse::SERVING);
}

void GrpcHosting::drain() {
  if (!started_ || stopped_) return;
  set_health(::grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  for (auto& h : servers_) h.server->drain();
}

void GrpcHosting::stop() {
  if (stopped_) return;
  stopped_ = true;
  set_health(::grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  if (started_) {
    for (auto& h : servers_) h.server->stop();
  }
}

void GrpcHosting::set_health(ServingStatus status) {
  for (auto& h : servers_) h.health->set_all(status);
}

std::string GrpcHosting::bound_address(std::string_view name) const {
  for (const auto& h : servers_) {
    if (h.name == name && h.bound) return h.server->bound_address();
  }
  return "";
}

grpc::HealthService* GrpcHosting::health(std::string_view name) const {
  for (const auto& h : servers_) {
    if (h.name == name) return h.health.get();
  }
  return nullptr;
}

GrpcServer* GrpcHosting::server(std::string_view name) const {
  for (const auto& h : servers_) {
    if (h.name == name) return h.server.get();
  }
  return nullptr;
}

}  // namespace portcullis::proxy
