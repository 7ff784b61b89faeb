// The Server's SPIFFE Workload API: built from config_->workload_api over the identity store,
// hosted by grpc_ (bound at start with the other gRPC servers, drained and stopped with them).
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include "proxy/server.h"

namespace portcullis::proxy {
namespace {

std::string workload_api_text(const ServerConfig& c) {
  if (!c.workload_api) return "~";
  YAML::Emitter out;
  if (c.workload_api->limits) out << c.workload_api->limits->yaml();
  return c.workload_api->address.to_string() + "\n" + out.c_str();
}

}  // namespace

Status Server::add_workload_api() {
  const auto& c = config_->workload_api;
  if (!c) return {};
  if (!identity_) return make_error(ErrorCode::kFailedPrecondition, "workload_api: no identity store");
  workload_api_ = attest::WorkloadApiService::create(identity_, stats_, audit_.get(), call_resolver());
  grpc::ServiceRegistry registry;
  if (Status s = attest::WorkloadApiService::register_with(workload_api_, registry); !s.ok()) return s;
  GrpcServerOptions options{"workload_api", c->address, config_->workload_api_limits, nullptr};
  // The trust domain from the config: an attested store has no current() snapshot until the node
  // is attested, which happens after the gRPC servers are built.
  spdlog::info("workload_api: serving SpiffeWorkloadAPI for {} at {} (from {})", config_->identity->trust_domain,
               c->address.to_string(), c->address_source);
  return grpc_->add(std::move(options), std::move(registry), {std::string(attest::WorkloadApiService::kServiceName)});
}

Status Server::check_workload_api_reload(const ServerConfig& next) const {
  if (workload_api_text(next) == workload_api_text(*config_)) return {};
  return make_error(ErrorCode::kFailedPrecondition,
                    "workload_api cannot change on reload (its streams and socket live for the process); restart to "
                    "change it");
}

}  // namespace portcullis::proxy
