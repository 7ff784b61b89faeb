#pragma once

// A real attestation authority in a temp dir (CA keys + SQLite), driven in-process, and an
// AuthorityApi wrapper that can take it "down" (every call UNAVAILABLE, the stream ended) the way
// a network partition would, without faking anything the authority itself does.
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "attest/agent/authority_api.h"
#include "attest/authority/authority_core.h"
#include "attest/authority/authority_store.h"
#include "attest/authority/certificate_authority.h"
#include "common/grpc/call_context.h"

namespace portcullis::attest::agent::testing {

inline constexpr const char* kTrustDomain = "example.org";

struct TestAuthority {
  std::string dir;
  std::shared_ptr<authority::AuthorityCore> core;

  static std::unique_ptr<TestAuthority> create(StatsStore& stats, std::chrono::seconds workload_ttl,
                                               std::chrono::seconds node_ttl) {
    auto out = std::make_unique<TestAuthority>();
    char tmpl[] = "/tmp/portcullis-agent-test-XXXXXX";
    if (!mkdtemp(tmpl)) {
      ADD_FAILURE() << "mkdtemp";
      return nullptr;
    }
    out->dir = tmpl;
    authority::CaOptions ca_options;
    ca_options.trust_domain = kTrustDomain;
    ca_options.data_dir = out->dir + "/ca";
    ca_options.stats = &stats;
    auto ca = authority::CertificateAuthority::open(ca_options);
    if (!ca.ok()) {
      ADD_FAILURE() << ca.error().message;
      return nullptr;
    }
    auto store = authority::AuthorityStore::open(out->dir + "/store/authority.db", stats);
    if (!store.ok()) {
      ADD_FAILURE() << store.error().message;
      return nullptr;
    }
    authority::AuthorityCoreOptions options;
    options.trust_domain = kTrustDomain;
    options.default_x509_svid_ttl = workload_ttl;
    options.node_svid_ttl = node_ttl;
    out->core = std::make_shared<authority::AuthorityCore>(options, std::move(ca.value()), std::move(store.value()),
                                                           stats, nullptr);
    return out;
  }
  ~TestAuthority() {
    core.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  std::string add_entry(const std::string& spiffe_id, std::vector<std::string> selectors, int64_t ttl_seconds = 0) {
    authority::v1::RegistrationEntry e;
    e.set_spiffe_id(spiffe_id);
    for (const auto& s : selectors) {
      auto* sel = e.add_selectors();
      size_t colon = s.find(':');
      sel->set_type(s.substr(0, colon));
      sel->set_value(s.substr(colon + 1));
    }
    e.set_x509_svid_ttl_seconds(ttl_seconds);
    auto created = core->create_entry(e);
    EXPECT_TRUE(created.ok()) << (created.ok() ? "" : created.error().message);
    return created.ok() ? created->id() : "";
  }
};

// Partitionable forwards to a real AuthorityApi until set_down(true): then every call fails with
// UNAVAILABLE and the update stream ends, as when the network to the authority is cut. Loop-only.
class Partitionable final : public AuthorityApi {
 public:
  Partitionable(AuthorityApi& inner, grpc::Executor& loop) : inner_(inner), loop_(loop) {}

  void set_down(bool down) {
    down_ = down;
    if (down && stream_) {
      auto end = std::move(stream_->on_end);
      stream_->inner.reset();
      stream_->dead = true;
      stream_ = nullptr;
      if (end) loop_.post([end] { end(grpc::GrpcStatus{grpc::StatusCode::kUnavailable, "partitioned"}); });
    }
  }
  int calls() const { return calls_; }

  void attest_node(v1::AttestNodeRequest r, ApiCallback<v1::AttestNodeResponse> d) override { fwd(&AuthorityApi::attest_node, std::move(r), std::move(d)); }
  void renew_node(v1::RenewNodeRequest r, ApiCallback<v1::RenewNodeResponse> d) override { fwd(&AuthorityApi::renew_node, std::move(r), std::move(d)); }
  void sign_workload_svids(v1::SignWorkloadSvidsRequest r, ApiCallback<v1::SignWorkloadSvidsResponse> d) override {
    fwd(&AuthorityApi::sign_workload_svids, std::move(r), std::move(d));
  }
  void mint_jwt_svid(v1::MintJwtSvidRequest r, ApiCallback<v1::MintJwtSvidResponse> d) override { fwd(&AuthorityApi::mint_jwt_svid, std::move(r), std::move(d)); }
  void revoke_svids(v1::RevokeSvidsRequest r, ApiCallback<v1::RevokeSvidsResponse> d) override { fwd(&AuthorityApi::revoke_svids, std::move(r), std::move(d)); }
  std::unique_ptr<UpdateStream> watch_updates(v1::WatchUpdatesRequest r, std::function<void(v1::AuthorityUpdate)> on_update,
                                              std::function<void(const grpc::GrpcStatus&)> on_end) override {
    auto s = std::make_unique<Stream>();
    if (down_) {
      loop_.post([on_end] { on_end(grpc::GrpcStatus{grpc::StatusCode::kUnavailable, "partitioned"}); });
      return s;
    }
    s->on_end = on_end;
    s->inner = inner_.watch_updates(std::move(r), std::move(on_update), std::move(on_end));
    s->owner = this;
    stream_ = s.get();
    return s;
  }
  void set_credentials(std::shared_ptr<const NodeCredentials> c) override { inner_.set_credentials(std::move(c)); }
  bool needs_join_token() const override { return inner_.needs_join_token(); }

 private:
  struct Stream final : UpdateStream {
    std::unique_ptr<UpdateStream> inner;
    std::function<void(const grpc::GrpcStatus&)> on_end;
    Partitionable* owner = nullptr;
    bool dead = false;
    ~Stream() override {
      if (!dead && owner && owner->stream_ == this) owner->stream_ = nullptr;
    }
  };
  template <typename M, typename Req, typename Done>
  void fwd(M method, Req r, Done d) {
    ++calls_;
    if (down_) {
      loop_.post([d = std::move(d)] { d(grpc::GrpcStatus{grpc::StatusCode::kUnavailable, "partitioned"}); });
      return;
    }
    (inner_.*method)(std::move(r), std::move(d));
  }

  AuthorityApi& inner_;
  grpc::Executor& loop_;
  bool down_ = false;
  int calls_ = 0;
  Stream* stream_ = nullptr;
};

}  // namespace portcullis::attest::agent::testing
