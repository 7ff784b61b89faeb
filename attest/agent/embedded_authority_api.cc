#include "attest/agent/embedded_authority_api.h"

#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace portcullis::attest::agent {

Result<std::shared_ptr<authority::AuthorityCore>> open_embedded_authority(const AgentConfig& config, StatsStore& stats,
                                                                          AuditLog* audit) {
  if (!config.embedded) return make_error(ErrorCode::kInvalidArgument, "identity has no embedded_authority");
  const std::string& dir = config.embedded->data_dir;
  // The CA key and the store live under it: create it private before either creates it 0755.
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(dir).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return make_error(ErrorCode::kUnavailable, "cannot create embedded_authority.data_dir " + dir + ": " +
                                                   std::strerror(errno));
  }
  authority::CaOptions ca_options;
  ca_options.trust_domain = config.trust_domain;
  ca_options.data_dir = dir + "/ca";
  ca_options.stats = &stats;
  auto ca = authority::CertificateAuthority::open(ca_options);
  if (!ca.ok()) return make_error(ca.error().code, "embedded authority CA in " + ca_options.data_dir + ": " + ca.error().message);
  auto store = authority::AuthorityStore::open(dir + "/authority.db", stats);
  if (!store.ok()) return make_error(store.error().code, "embedded authority store: " + store.error().message);
  authority::AuthorityCoreOptions options;
  options.trust_domain = config.trust_domain;
  options.join_token_attestor = false;
  auto core = std::make_shared<authority::AuthorityCore>(options, std::move(ca.value()), std::move(store.value()), stats,
                                                         audit);
  if (!config.embedded->entries_file.empty()) {
    auto seeded = core->seed_entries_file(config.embedded->entries_file);
    if (!seeded.ok()) return make_error(seeded.error().code, "entries_file: " + seeded.error().message);
  }
  return core;
}

EmbeddedAuthorityApi::EmbeddedAuthorityApi(authority::AuthorityCore& core, grpc::Executor& loop,
                                           const std::string& hostname)
    : core_(core), loop_(loop), node_id_(core.embedded_node_id(hostname)) {}

EmbeddedAuthorityApi::~EmbeddedAuthorityApi() { *alive_ = false; }

template <typename T>
void EmbeddedAuthorityApi::reply(Result<T> result, ApiCallback<T> done) {
  grpc::GrpcResult<T> out = result.ok() ? grpc::GrpcResult<T>(std::move(result.value()))
                                        : grpc::GrpcResult<T>(grpc::to_grpc_status(result.error()));
  loop_.post([alive = alive_, done = std::move(done), out = std::move(out)]() mutable {
    if (*alive) done(std::move(out));
  });
}

void EmbeddedAuthorityApi::attest_node(v1::AttestNodeRequest request, ApiCallback<v1::AttestNodeResponse> done) {
  // Being in-process is the evidence: sign the embedded node's SVID as a renewal of that ID.
  v1::RenewNodeRequest renew;
  renew.set_csr(request.csr());
  auto signed_svid = core_.renew_node(node_id_, renew);
  if (!signed_svid.ok()) return reply<v1::AttestNodeResponse>(signed_svid.error(), std::move(done));
  v1::AttestNodeResponse out;
  *out.mutable_svid() = std::move(*signed_svid->mutable_svid());
  *out.mutable_bundle() = core_.bundle();
  reply<v1::AttestNodeResponse>(std::move(out), std::move(done));
}

void EmbeddedAuthorityApi::renew_node(v1::RenewNodeRequest request, ApiCallback<v1::RenewNodeResponse> done) {
  reply(core_.renew_node(node_id_, request), std::move(done));
}

void EmbeddedAuthorityApi::sign_workload_svids(v1::SignWorkloadSvidsRequest request,
                                               ApiCallback<v1::SignWorkloadSvidsResponse> done) {
  reply(core_.sign_workload_svids(node_id_, request), std::move(done));
}

void EmbeddedAuthorityApi::mint_jwt_svid(v1::MintJwtSvidRequest request, ApiCallback<v1::MintJwtSvidResponse> done) {
  reply(core_.mint_jwt_svid(node_id_, request), std::move(done));
}

void EmbeddedAuthorityApi::revoke_svids(v1::RevokeSvidsRequest request, ApiCallback<v1::RevokeSvidsResponse> done) {
  reply(core_.revoke(node_id_, request), std::move(done));
}

namespace {

// EmbeddedStream holds the feed subscription. `live` is cleared first on destruction, so updates
// already posted but not yet run are dropped.
class EmbeddedStream final : public UpdateStream {
 public:
  EmbeddedStream(std::shared_ptr<std::atomic<bool>> live, authority::Subscription sub)
      : live_(std::move(live)), sub_(std::move(sub)) {}
  ~EmbeddedStream() override {
    *live_ = false;
    sub_.reset();
  }

 private:
  std::shared_ptr<std::atomic<bool>> live_;
  authority::Subscription sub_;
};

}  // namespace

std::unique_ptr<UpdateStream> EmbeddedAuthorityApi::watch_updates(v1::WatchUpdatesRequest,
                                                                  std::function<void(v1::AuthorityUpdate)> on_update,
                                                                  std::function<void(const grpc::GrpcStatus&)> on_end) {
  auto live = std::make_shared<std::atomic<bool>>(true);
  auto shared_update = std::make_shared<std::function<void(v1::AuthorityUpdate)>>(std::move(on_update));
  // The feed calls back on the publishing thread under its lock: copy and post, nothing more.
  auto sub = core_.watch([live, alive = alive_, loop = &loop_, shared_update](const v1::AuthorityUpdate& update) {
    loop->post([live, alive, shared_update, update] {
      if (*live && *alive) (*shared_update)(update);
    });
  });
  if (!sub.ok()) {
    loop_.post([live, alive = alive_, on_end = std::move(on_end), status = grpc::to_grpc_status(sub.error())] {
      if (*live && *alive) on_end(status);
    });
    return std::make_unique<EmbeddedStream>(live, authority::Subscription{});
  }
  // An in-process feed never ends on its own; on_end is only for a refused subscription.
  return std::make_unique<EmbeddedStream>(live, std::move(sub.value()));
}

}  // namespace portcullis::attest::agent
