#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "common/grpc/service_registry.h"
#include "common/result.h"
#include "common/stats.h"
#include "mtls/sds/sds_config.h"
#include "mtls/sds/sds_stream.h"
#include "mtls/svid_store.h"

namespace portcullis::mtls {

// SdsService is Envoy's `envoy.service.secret.v3.SecretDiscoveryService` over an SvidStore,
// serving resource names as SPIRE's agent does (see build_secrets):
//  - StreamSecrets: state of the world, one SdsStream per call (ACK/NACK, stale nonces, pushes);
//  - FetchSecrets: one answer with version_info "" and no nonce (SPIRE's semantics);
//  - DeltaSecrets: UNIMPLEMENTED, as SPIRE answers it.
// The caller is the call's peer process (CallerInfo from SO_PEERCRED) and gets
// store.for_caller(caller). Stats under `sds.` (SdsStats).
//
// Threading: handlers run on the calls' loops. The service subscribes to the store; the store
// calls back on its publishing thread (the main thread), and the service only posts a
// re-evaluation to every open stream's loop, so a rotation reaches every stream within one loop
// turn. Lifetime: shared; registered handlers keep it alive. Destroying it unsubscribes.
class SdsService : public std::enable_shared_from_this<SdsService> {
 public:
  static constexpr const char* kServiceName = "envoy.service.secret.v3.SecretDiscoveryService";
  static constexpr const char* kStreamPath = "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets";
  static constexpr const char* kFetchPath = "/envoy.service.secret.v3.SecretDiscoveryService/FetchSecrets";
  static constexpr const char* kDeltaPath = "/envoy.service.secret.v3.SecretDiscoveryService/DeltaSecrets";

  // create subscribes to `store` (which must outlive the service). `resolve_caller` attests each
  // stream's peer (null: SO_PEERCRED only, enough for a static store).
  static std::shared_ptr<SdsService> create(std::shared_ptr<SvidStore> store, const SdsConfig& config,
                                            StatsStore& stats, CallerResolver resolve_caller = nullptr);
  ~SdsService();
  SdsService(const SdsService&) = delete;
  SdsService& operator=(const SdsService&) = delete;

  // register_with adds the three methods to `registry`; the handlers keep `service` alive.
  static Status register_with(const std::shared_ptr<SdsService>& service, grpc::ServiceRegistry& registry);

  // fetch answers one FetchSecrets request.
  grpc::GrpcResult<::envoy::service::discovery::v3::DiscoveryResponse> fetch(
      const grpc::ServerCallContext& context, const ::envoy::service::discovery::v3::DiscoveryRequest& request) const;
  // open_stream serves one StreamSecrets call.
  void open_stream(SdsBidiStream stream);
  // open_streams counts the StreamSecrets calls being served.
  size_t open_streams() const;

 private:
  explicit SdsService(std::shared_ptr<const SdsContext> context) : context_(std::move(context)) {}
  void on_rotation();

  std::shared_ptr<const SdsContext> context_;
  mutable std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<SdsStream>> streams_;  // open StreamSecrets calls
  uint64_t next_stream_id_ = 1;
  // Last member: unsubscribed first on destruction, before the members its callback reads.
  SvidSubscription subscription_;
};

}  // namespace portcullis::mtls
