#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "attest/agent/authority_api.h"
#include "common/grpc/channel.h"
#include "common/result.h"

namespace portcullis::attest::agent {

// ChannelFactory builds a channel to the authority that authenticates with `credentials`: the
// proxy makes a client TlsContext (node SVID chain + in-memory key as the client certificate,
// authority_bundle as trust anchors, server_spiffe_id as the required URI SAN, ALPN h2) and a
// proxy::GrpcChannel over it on the main loop. Without a node SVID (before node attestation) the
// context has no client certificate; only AttestNode works then. Called on the loop.
using ChannelFactory = std::function<Result<std::shared_ptr<grpc::Channel>>(const NodeCredentials& credentials)>;

// RemoteAuthorityApi is AuthorityApi over our gRPC client. set_credentials() rebuilds the channel
// through the factory (a renewed node SVID or a rotated CA bundle means a new TLS context); calls
// already running finish on the old channel, which lives as long as they do. A factory failure
// fails the calls that follow with UNAVAILABLE until the next set_credentials().
//
// Threading: loop-only (the channel's executor, which must be the agent's loop). Every callback
// is posted to the loop, so none runs inline; the destructor cancels running calls and nothing
// runs after it.
class RemoteAuthorityApi final : public AuthorityApi {
 public:
  RemoteAuthorityApi(ChannelFactory factory, grpc::Executor& loop, std::chrono::milliseconds call_timeout);
  ~RemoteAuthorityApi() override;

  void attest_node(v1::AttestNodeRequest request, ApiCallback<v1::AttestNodeResponse> done) override;
  void renew_node(v1::RenewNodeRequest request, ApiCallback<v1::RenewNodeResponse> done) override;
  void sign_workload_svids(v1::SignWorkloadSvidsRequest request, ApiCallback<v1::SignWorkloadSvidsResponse> done) override;
  void mint_jwt_svid(v1::MintJwtSvidRequest request, ApiCallback<v1::MintJwtSvidResponse> done) override;
  void revoke_svids(v1::RevokeSvidsRequest request, ApiCallback<v1::RevokeSvidsResponse> done) override;
  std::unique_ptr<UpdateStream> watch_updates(v1::WatchUpdatesRequest request,
                                              std::function<void(v1::AuthorityUpdate)> on_update,
                                              std::function<void(const grpc::GrpcStatus&)> on_end) override;
  void set_credentials(std::shared_ptr<const NodeCredentials> credentials) override;
  bool needs_join_token() const override { return true; }

 private:
  template <typename Req, typename Resp>
  void unary(const char* method, const Req& request, ApiCallback<Resp> done);
  std::shared_ptr<grpc::Channel> channel(std::string* out_error);

  struct Calls;  // the running calls, shared with their callbacks
  ChannelFactory factory_;
  grpc::Executor& loop_;
  std::chrono::milliseconds call_timeout_;
  std::shared_ptr<const NodeCredentials> credentials_;
  std::shared_ptr<grpc::Channel> channel_;
  static constexpr size_t kRetiredChannels = 2;
  std::vector<std::shared_ptr<grpc::Channel>> retired_;  // replaced by set_credentials, calls may still run
  std::string channel_error_;
  std::shared_ptr<Calls> calls_;
};

}  // namespace portcullis::attest::agent
