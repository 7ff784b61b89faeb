#include "mtls/sds/sds_service.h"

#include "mtls/sds/secret_builder.h"

namespace portcullis::mtls {
namespace {

using ::envoy::service::discovery::v3::DeltaDiscoveryRequest;
using ::envoy::service::discovery::v3::DeltaDiscoveryResponse;
using ::envoy::service::discovery::v3::DiscoveryRequest;
using ::envoy::service::discovery::v3::DiscoveryResponse;

}  // namespace

std::shared_ptr<SdsService> SdsService::create(std::shared_ptr<SvidStore> store, const SdsConfig& config,
                                               StatsStore& stats, CallerResolver resolve_caller) {
  auto context = std::make_shared<const SdsContext>(SdsContext{std::move(store), config.names,
                                                               config.disable_spiffe_cert_validation,
                                                               SdsStats::create(stats), std::move(resolve_caller)});
  std::shared_ptr<SdsService> service(new SdsService(context));
  SdsService* raw = service.get();  // the subscription is reset before the service is gone
  service->subscription_ = context->store->subscribe([raw](uint64_t) { raw->on_rotation(); });
  return service;
}

SdsService::~SdsService() { subscription_.reset(); }

Status SdsService::register_with(const std::shared_ptr<SdsService>& service, grpc::ServiceRegistry& registry) {
  if (Status s = registry.add_bidi<DiscoveryRequest, DiscoveryResponse>(
          kStreamPath, [service](SdsBidiStream stream) { service->open_stream(std::move(stream)); });
      !s.ok()) {
    return s;
  }
  if (Status s = registry.add_unary<DiscoveryRequest, DiscoveryResponse>(
          kFetchPath,
          [service](const grpc::ServerCallContext& ctx, const DiscoveryRequest& req) { return service->fetch(ctx, req); });
      !s.ok()) {
    return s;
  }
  return registry.add_bidi<DeltaDiscoveryRequest, DeltaDiscoveryResponse>(
      kDeltaPath, [](grpc::BidiStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse> stream) {
        stream.finish({grpc::StatusCode::kUnimplemented, "DeltaSecrets is not implemented; use StreamSecrets"});
      });
}

grpc::GrpcResult<DiscoveryResponse> SdsService::fetch(const grpc::ServerCallContext& context,
                                                      const DiscoveryRequest& request) const {
  if (!request.type_url().empty() && request.type_url() != kSecretTypeUrl) {
    return grpc::GrpcStatus{grpc::StatusCode::kInvalidArgument, "unsupported type_url \"" + request.type_url() + "\""};
  }
  auto view = context_->store->for_caller(caller_info(*context_, context));
  std::vector<std::string> names(request.resource_names().begin(), request.resource_names().end());
  auto mode = validation_mode(request.node(), context_->disable_spiffe_cert_validation);
  auto secrets = build_secrets(view.get(), names, mode, context_->names);
  if (!secrets.ok()) {
    if (secrets.status().code == grpc::StatusCode::kInvalidArgument) context_->stats.unknown_resource_errors.inc();
    return secrets.status();
  }
  DiscoveryResponse response;
  response.set_type_url(kSecretTypeUrl);  // version_info "" and no nonce, as SPIRE answers a fetch
  for (const auto& secret : secrets.value()) response.add_resources()->PackFrom(secret);
  context_->stats.responses_sent.inc();
  return response;
}

void SdsService::open_stream(SdsBidiStream stream) {
  auto s = std::make_shared<SdsStream>(context_, std::move(stream));
  uint64_t id;
  {
    std::lock_guard lock(mu_);
    id = next_stream_id_++;
    streams_[id] = s;
  }
  s->start([weak = weak_from_this(), id] {
    auto self = weak.lock();
    if (!self) return;
    std::shared_ptr<SdsStream> closed;  // destroyed after the lock is released
    std::lock_guard lock(self->mu_);
    if (auto it = self->streams_.find(id); it != self->streams_.end()) {
      closed = std::move(it->second);
      self->streams_.erase(it);
    }
  });
}

size_t SdsService::open_streams() const {
  std::lock_guard lock(mu_);
  return streams_.size();
}

void SdsService::on_rotation() {
  // notify_rotation only posts, so this holds the lock briefly.
  std::lock_guard lock(mu_);
  for (const auto& [id, stream] : streams_) stream->notify_rotation();
}

}  // namespace portcullis::mtls
