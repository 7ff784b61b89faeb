#include "common/grpc/health_service.h"

#include <algorithm>

namespace portcullis::grpc {

using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;

std::shared_ptr<HealthService> HealthService::create() {
  std::shared_ptr<HealthService> service(new HealthService());
  service->statuses_[""] = HealthCheckResponse::SERVING;
  return service;
}

void HealthService::set_status(const std::string& service, ServingStatus status) {
  std::vector<std::shared_ptr<Watcher>> to_push;
  {
    std::lock_guard lock(mu_);
    statuses_[service] = status;
    for (const auto& w : watchers_) {
      if (w->service == service) to_push.push_back(w);
    }
  }
  // Posted, not written here: writers belong to their calls' loops, and this may be any thread.
  for (const auto& w : to_push) {
    w->writer.post([self = shared_from_this(), w](const auto&) { self->push(w); });
  }
}

void HealthService::set_all(ServingStatus status) {
  std::vector<std::string> names;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, s] : statuses_) names.push_back(name);
  }
  for (const auto& name : names) set_status(name, status);
}

HealthService::ServingStatus HealthService::status(const std::string& service) const {
  std::lock_guard lock(mu_);
  auto it = statuses_.find(service);
  return it == statuses_.end() ? HealthCheckResponse::SERVICE_UNKNOWN : it->second;
}

// push sends the watcher's current status if it changed since the last message (a set_status
// racing with the first message would otherwise repeat it).
void HealthService::push(const std::shared_ptr<Watcher>& watcher) {
  ServingStatus now = status(watcher->service);
  if (watcher->last_sent == now) return;
  watcher->last_sent = now;
  HealthCheckResponse response;
  response.set_status(now);
  watcher->writer.write(response);
}

void HealthService::watch(const HealthCheckRequest& request, ServerWriter<HealthCheckResponse> writer) {
  auto watcher = std::make_shared<Watcher>(Watcher{writer, request.service()});
  {
    std::lock_guard lock(mu_);
    watchers_.push_back(watcher);
  }
  std::weak_ptr<HealthService> weak = weak_from_this();
  writer.on_done([weak, watcher](const GrpcStatus&) {
    auto self = weak.lock();
    if (!self) return;
    std::lock_guard lock(self->mu_);
    std::erase(self->watchers_, watcher);
  });
  push(watcher);
}

Status HealthService::register_with(ServiceRegistry& registry) {
  auto self = shared_from_this();
  Status s = registry.add_unary<HealthCheckRequest, HealthCheckResponse>(
      kCheckPath, [self](const ServerCallContext&, const HealthCheckRequest& request) -> GrpcResult<HealthCheckResponse> {
        ServingStatus st = self->status(request.service());
        if (st == HealthCheckResponse::SERVICE_UNKNOWN) {
          return GrpcStatus{StatusCode::kNotFound, "unknown service"};
        }
        HealthCheckResponse response;
        response.set_status(st);
        return response;
      });
  if (!s.ok()) return s;
  return registry.add_server_streaming<HealthCheckRequest, HealthCheckResponse>(
      kWatchPath, [self](const HealthCheckRequest& request, ServerWriter<HealthCheckResponse> writer) {
        self->watch(request, std::move(writer));
      });
}

}  // namespace portcullis::grpc
