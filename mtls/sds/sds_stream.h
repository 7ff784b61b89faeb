#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/grpc/server_call.h"
#include "envoy/service/discovery/v3/discovery.pb.h"
#include "mtls/sds/sds_config.h"
#include "mtls/sds/sds_stats.h"
#include "mtls/caller_resolver.h"
#include "mtls/svid_store.h"

namespace portcullis::mtls {

// SdsContext is what the SDS service and all its streams share. Immutable after construction;
// the store and the StatsStore behind `stats` must outlive every stream.
struct SdsContext {
  std::shared_ptr<SvidStore> store;
  SdsNames names;
  bool disable_spiffe_cert_validation = false;
  SdsStats stats;
  CallerResolver resolve_caller;  // null: SO_PEERCRED only
};

using SdsBidiStream = grpc::BidiStream<::envoy::service::discovery::v3::DiscoveryRequest,
                                       ::envoy::service::discovery::v3::DiscoveryResponse>;

// caller_info maps a call's peer to the store's CallerInfo (the context's resolver, or SO_PEERCRED).
CallerInfo caller_info(const SdsContext& sds, const grpc::ServerCallContext& context);

// SdsStream is one StreamSecrets call, state of the world (wire facts §3.4/§3.5):
//  - the first request is answered at once; later requests are replies: a response_nonce that
//    is not the latest one sent is stale and ignored; error_detail present = NACK (counted, its
//    message logged once per distinct message), else ACK (counted); a changed resource_names set
//    is answered again, an unchanged one is not;
//  - on a rotation the view is rebuilt and pushed only when the resources differ from the last
//    response (whether or not that one was ACKed yet);
//  - version_info is the identity snapshot's version (store-wide, strictly increasing, so it
//    also orders responses across streams); each response carries a fresh random 8-hex nonce;
//  - a name the caller may not have ends the call with INVALID_ARGUMENT, as SPIRE does.
// Threading: lives on the call's loop; only notify_rotation() may be called from elsewhere.
// Lifetime: owned by the SdsService until the call ends (on_closed); the call's callbacks hold
// only weak references to it.
class SdsStream : public std::enable_shared_from_this<SdsStream> {
 public:
  SdsStream(std::shared_ptr<const SdsContext> context, SdsBidiStream stream);

  // start installs the call's callbacks; `on_closed` runs once on the loop when the call ends.
  void start(std::function<void()> on_closed);
  // notify_rotation posts a re-evaluation to the stream's loop. Any thread; returns at once.
  void notify_rotation();

 private:
  void on_request(::envoy::service::discovery::v3::DiscoveryRequest&& request);
  bool is_current(const ::envoy::service::discovery::v3::DiscoveryRequest& request);
  void on_rotation();
  // respond builds the caller's resources and sends them, unless `only_if_changed` and they equal
  // the last response's. Ends the call on a resolution error.
  void respond(bool only_if_changed, bool rotation);
  std::string next_nonce();

  std::shared_ptr<const SdsContext> context_;
  const SdsBidiStream stream_;
  CallerInfo caller_;
  bool requested_ = false;                  // a request arrived: there is something to push
  ::envoy::config::core::v3::Node node_;    // from the latest request that carried one
  std::vector<std::string> names_;          // sorted, unique
  std::string last_nonce_;
  std::string last_version_;
  std::string last_resources_;              // serialized Anys of the last response
  std::string last_nack_message_;
};

}  // namespace portcullis::mtls
