// The Server's gRPC services: which ones a config asks for, and what a reload may change. Each
// service adds one block to build_grpc (and, if it has reloadable state, to the reload pair).
#include <spdlog/spdlog.h>

#include "proxy/server.h"

namespace portcullis::proxy {

Status Server::build_grpc() {
  grpc_ = std::make_unique<GrpcHosting>(stats_);
  if (const auto& c = config_->ext_authz) {
    ext_authz_ = std::make_shared<filters::ExtAuthzService>(c->stat_prefix, c->policy, stats_, audit_.get());
    grpc::ServiceRegistry registry;
    if (Status s = filters::ExtAuthzService::register_with(ext_authz_, registry); !s.ok()) return s;
    GrpcServerOptions options{"ext_authz", c->address, config_->ext_authz_limits, nullptr};
    if (Status s = grpc_->add(std::move(options), std::move(registry), {filters::ExtAuthzService::kServiceName});
        !s.ok()) {
      return s;
    }
  }
  if (const auto& c = config_->sds) {
    // The config requires `identity` next to `sds`, and start() built the store from it.
    sds_ = mtls::SdsService::create(identity_, *c, stats_, call_resolver());
    grpc::ServiceRegistry registry;
    if (Status s = mtls::SdsService::register_with(sds_, registry); !s.ok()) return s;
    GrpcServerOptions options{"sds", c->address, config_->sds_limits, nullptr};
    if (Status s = grpc_->add(std::move(options), std::move(registry), {mtls::SdsService::kServiceName}); !s.ok()) {
      return s;
    }
  }
  if (Status s = add_workload_api(); !s.ok()) return s;
  return grpc_->bind();
}

Status Server::check_grpc_reload(const ServerConfig& next) const {
  if (Status s = check_workload_api_reload(next); !s.ok()) return s;
  const auto& now = config_->ext_authz;
  if (now.has_value() != next.ext_authz.has_value() || (now && now->fixed != next.ext_authz->fixed)) {
    return make_error(ErrorCode::kFailedPrecondition,
                      "ext_authz_server: only rules and shadow_rules can change on reload; restart to add, remove or "
                      "change its address, stat_prefix or limits");
  }
  // SDS content follows the identity store, which rotates on its own; its socket and names stay.
  const auto& sds = config_->sds;
  if (sds.has_value() != next.sds.has_value() || (sds && sds->fixed != next.sds->fixed)) {
    return make_error(ErrorCode::kFailedPrecondition, "the sds block cannot change on reload; restart to change it");
  }
  return {};
}

void Server::apply_grpc_reload(const ServerConfig& next) {
  if (ext_authz_ && next.ext_authz) {
    ext_authz_->update(next.ext_authz->policy);
    spdlog::info("ext_authz_server: new rules in effect for new Check calls");
  }
}

}  // namespace portcullis::proxy
