#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/grpc/status.h"
#include "mtls/svid_store.h"
#include "portcullis/authority/v1/authority.pb.h"

namespace portcullis::attest::agent {

namespace v1 = ::portcullis::authority::v1;

template <typename T>
using ApiCallback = std::function<void(grpc::GrpcResult<T>)>;

// UpdateStream is one open WatchUpdates call. Destroying it cancels the call; after that neither
// of its callbacks runs again.
class UpdateStream {
 public:
  virtual ~UpdateStream() = default;
};

// NodeCredentials is what an authority connection authenticates with: the node SVID (with its
// in-memory key) once node attestation succeeded, and always the bundle that verifies the
// authority. Immutable; the agent publishes a new one when the node SVID renews or the bundle
// changes.
struct NodeCredentials {
  std::shared_ptr<const mtls::X509Svid> node_svid;  // null before node attestation (AttestNode only)
  std::shared_ptr<const mtls::TrustBundle> authority_bundle;
  std::string server_spiffe_id;  // the authority's SVID must carry this ID
};

// AuthorityApi is the agent's view of the Authority service (api/portcullis/authority/v1): one
// async method per RPC. Callbacks run on the agent's executor (the main thread), never inline,
// exactly once each (a transport failure is a GrpcStatus, UNAVAILABLE when the authority cannot be
// reached). Call the methods on that executor too. The agent owns the AuthorityApi and outlives
// every call it starts; implementations must not run a callback after their destructor.
class AuthorityApi {
 public:
  virtual ~AuthorityApi() = default;
  virtual void attest_node(v1::AttestNodeRequest request, ApiCallback<v1::AttestNodeResponse> done) = 0;
  virtual void renew_node(v1::RenewNodeRequest request, ApiCallback<v1::RenewNodeResponse> done) = 0;
  virtual void sign_workload_svids(v1::SignWorkloadSvidsRequest request,
                                   ApiCallback<v1::SignWorkloadSvidsResponse> done) = 0;
  virtual void mint_jwt_svid(v1::MintJwtSvidRequest request, ApiCallback<v1::MintJwtSvidResponse> done) = 0;
  virtual void revoke_svids(v1::RevokeSvidsRequest request, ApiCallback<v1::RevokeSvidsResponse> done) = 0;
  // watch_updates opens the update stream: on_update per message (the first carries the full
  // bundle and revocation set), on_end once when it ends for any reason but the handle's
  // destruction.
  virtual std::unique_ptr<UpdateStream> watch_updates(v1::WatchUpdatesRequest request,
                                                      std::function<void(v1::AuthorityUpdate)> on_update,
                                                      std::function<void(const grpc::GrpcStatus&)> on_end) = 0;
  // set_credentials hands over the node's current credentials (after attestation and every
  // renewal); calls started afterwards use them. In-process implementations ignore it.
  virtual void set_credentials(std::shared_ptr<const NodeCredentials> credentials) = 0;
  // needs_join_token: false for the embedded authority, whose node is attested by being in-process.
  virtual bool needs_join_token() const = 0;
};

}  // namespace portcullis::attest::agent
