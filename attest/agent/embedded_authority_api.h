#pragma once

#include <memory>
#include <string>

#include "attest/agent/agent_config.h"
#include "attest/agent/authority_api.h"
#include "attest/authority/authority_core.h"
#include "common/grpc/call_context.h"

namespace portcullis::attest::agent {

// open_embedded_authority builds the in-process authority of `identity.embedded_authority`: its
// CA (generated on first start, kept 0600) under <data_dir>/ca, its SQLite store at
// <data_dir>/authority.db, default TTLs and limits, the join-token attestor off (the only node is
// the embedded one), and the entries of entries_file seeded (idempotent). Fails naming the step.
// Blocking (file and SQLite I/O): call at startup.
Result<std::shared_ptr<authority::AuthorityCore>> open_embedded_authority(const AgentConfig& config, StatsStore& stats,
                                                                          AuditLog* audit);

// EmbeddedAuthorityApi is AuthorityApi over an in-process AuthorityCore (`identity.
// embedded_authority`): no network hop, no TLS. The node is spiffe://<td>/node/embedded/<hostname>
// and is attested by being in-process: attest_node signs the node SVID for that ID directly (the
// core's renew path), with no evidence.
//
// Threading: call on `loop`. Core calls run inline (they block for a signature and a SQLite write,
// well under a millisecond) and their results are posted to `loop`, so no callback runs inline.
// Update-feed callbacks arrive on whichever thread publishes (a revocation by this agent, or an
// admin request) and are posted to `loop`. Nothing runs after destruction. `core` must outlive
// this object.
class EmbeddedAuthorityApi final : public AuthorityApi {
 public:
  EmbeddedAuthorityApi(authority::AuthorityCore& core, grpc::Executor& loop, const std::string& hostname);
  ~EmbeddedAuthorityApi() override;

  const std::string& node_id() const { return node_id_; }

  void attest_node(v1::AttestNodeRequest request, ApiCallback<v1::AttestNodeResponse> done) override;
  void renew_node(v1::RenewNodeRequest request, ApiCallback<v1::RenewNodeResponse> done) override;
  void sign_workload_svids(v1::SignWorkloadSvidsRequest request, ApiCallback<v1::SignWorkloadSvidsResponse> done) override;
  void mint_jwt_svid(v1::MintJwtSvidRequest request, ApiCallback<v1::MintJwtSvidResponse> done) override;
  void revoke_svids(v1::RevokeSvidsRequest request, ApiCallback<v1::RevokeSvidsResponse> done) override;
  std::unique_ptr<UpdateStream> watch_updates(v1::WatchUpdatesRequest request,
                                              std::function<void(v1::AuthorityUpdate)> on_update,
                                              std::function<void(const grpc::GrpcStatus&)> on_end) override;
  void set_credentials(std::shared_ptr<const NodeCredentials>) override {}
  bool needs_join_token() const override { return false; }

 private:
  template <typename T>
  void reply(Result<T> result, ApiCallback<T> done);

  authority::AuthorityCore& core_;
  grpc::Executor& loop_;
  std::string node_id_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace portcullis::attest::agent
