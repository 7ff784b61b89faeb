// WorkloadApiService on FakeServerCall: the security header, every method, pushes on rotation
// (and skipped when proto-equal), the caller in the audit log, and the stat names.
#include "attest/workload_api/workload_api_service.h"

#include <openssl/bytestring.h>

#include <fstream>

#include <gtest/gtest.h>

#include "../mtls/identity_files.h"
#include "attest/workload_api/workload_api_messages.h"
#include "common/grpc/fake_server_call.h"
#include "mtls/static_svid_store.h"

namespace portcullis::attest {
namespace {

using grpc::FakeServerCall;
using grpc::StatusCode;
using mtls::testing::IdentityFiles;
using mtls::testing::leaf_for;
using mtls::testing::must;

constexpr const char* kFetchX509Svid = "/SpiffeWorkloadAPI/FetchX509SVID";
constexpr const char* kFetchX509Bundles = "/SpiffeWorkloadAPI/FetchX509Bundles";
constexpr const char* kFetchJwtSvid = "/SpiffeWorkloadAPI/FetchJWTSVID";
constexpr const char* kFetchJwtBundles = "/SpiffeWorkloadAPI/FetchJWTBundles";
constexpr const char* kValidateJwtSvid = "/SpiffeWorkloadAPI/ValidateJWTSVID";

const grpc::Metadata kSecure = {{"workload.spiffe.io", "true"}};

// SwitchableStore serves a given snapshot (or none) and publishes on demand: for proto-equal
// publications, identities withdrawn from a caller, and a store that is not ready.
class SwitchableStore final : public mtls::SvidStore {
 public:
  std::shared_ptr<const mtls::IdentitySnapshot> current() const override { return snapshot_; }
  std::shared_ptr<const mtls::IdentitySnapshot> for_caller(const mtls::CallerInfo&) const override {
    return entitled_ ? snapshot_ : nullptr;
  }
  mtls::SvidSubscription subscribe(Callback cb) override { return watchers_.subscribe(std::move(cb)); }
  void publish(std::shared_ptr<const mtls::IdentitySnapshot> s, bool entitled = true) {
    snapshot_ = std::move(s);
    entitled_ = entitled;
    watchers_.notify(++version_);
  }
  size_t watchers() const { return watchers_.size(); }

 private:
  std::shared_ptr<const mtls::IdentitySnapshot> snapshot_;
  bool entitled_ = true;
  uint64_t version_ = 0;
  mtls::SvidWatchers watchers_;
};

class WorkloadApiServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    files_.write_all(files_.leaf, files_.ca);
    auto store = mtls::StaticSvidStore::create(files_.config(), stats_);
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(store.value());
    auto audit = AuditLog::create({{AuditSinkConfig::Kind::kFile, files_.path("audit.log")}}, 1024, stats_);
    ASSERT_TRUE(audit.ok()) << audit.error().message;
    audit_ = std::move(audit.value());
    use_store(store_);
  }

  void use_store(std::shared_ptr<mtls::SvidStore> store) {
    service_ = WorkloadApiService::create(std::move(store), stats_, audit_.get());
    registry_ = grpc::ServiceRegistry{};
    ASSERT_TRUE(WorkloadApiService::register_with(service_, registry_).ok());
  }

  template <typename Req>
  std::shared_ptr<FakeServerCall> call(const char* path, const Req& req, grpc::Metadata md = kSecure) {
    grpc::ServerCallContext ctx;
    ctx.method = path;
    ctx.metadata = std::move(md);
    auto peer = std::make_shared<grpc::PeerInfo>();
    peer->transport = grpc::PeerInfo::Transport::kUnix;
    peer->address = "/run/portcullis/agent.sock";
    peer->credentials = grpc::PeerCredentials{4242, 1000, 1001};
    ctx.peer = std::move(peer);
    std::string bytes;
    req.SerializeToString(&bytes);
    return grpc::start_fake_call(registry_, path, std::move(bytes), std::move(ctx));
  }

  std::string fetch_jwt(const std::vector<std::string>& audience, const std::string& spiffe_id = "") {
    JWTSVIDRequest req;
    for (const auto& a : audience) req.add_audience(a);
    req.set_spiffe_id(spiffe_id);
    auto c = call(kFetchJwtSvid, req);
    EXPECT_EQ(c->final_status()->code, StatusCode::kOk) << c->final_status()->message;
    if (c->sent().empty()) return "";
    return c->sent_as<JWTSVIDResponse>(0).svids(0).svid();
  }

  int64_t stat(const std::string& name) const { return stats_.value("workload_api." + name).value_or(-1); }

  std::vector<std::string> audit_lines() {
    audit_->flush();
    std::ifstream in(files_.path("audit.log"));
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }

  IdentityFiles files_;
  StatsStore stats_;
  std::shared_ptr<mtls::StaticSvidStore> store_;
  std::unique_ptr<AuditLog> audit_;
  std::shared_ptr<WorkloadApiService> service_;
  grpc::ServiceRegistry registry_;
};

// --- the security header -------------------------------------------------------------------

struct HeaderCase {
  const char* name;
  grpc::Metadata metadata;
};

class SecurityHeaderTest : public WorkloadApiServiceTest,
                           public ::testing::WithParamInterface<std::tuple<const char*, HeaderCase>> {};

TEST_P(SecurityHeaderTest, EveryMethodRefusesCallsWithoutExactlyOneTrueHeader) {
  const auto& [path, hc] = GetParam();
  std::shared_ptr<FakeServerCall> c;
  std::string p = path;
  if (p == kFetchJwtSvid) {
    JWTSVIDRequest req;
    req.add_audience("db");
    c = call(path, req, hc.metadata);
  } else if (p == kValidateJwtSvid) {
    ValidateJWTSVIDRequest req;
    req.set_audience("db");
    req.set_svid("a.b.c");
    c = call(path, req, hc.metadata);
  } else {
    c = call(path, X509SVIDRequest{}, hc.metadata);  // all three stream requests are empty messages
  }
  ASSERT_TRUE(c->final_status());
  EXPECT_EQ(c->final_status()->code, StatusCode::kInvalidArgument);
  EXPECT_EQ(c->final_status()->message, "security header missing from request");
  EXPECT_TRUE(c->sent().empty());
  EXPECT_EQ(stat("security_header_missing"), 1);
  EXPECT_EQ(stat("invalid_argument"), 1);
  EXPECT_EQ(store_->watcher_count(), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Methods, SecurityHeaderTest,
    ::testing::Combine(::testing::Values(kFetchX509Svid, kFetchX509Bundles, kFetchJwtSvid, kFetchJwtBundles,
                                         kValidateJwtSvid),
                       ::testing::Values(HeaderCase{"missing", {}}, HeaderCase{"other_header", {{"x-foo", "true"}}},
                                         HeaderCase{"duplicated", {{"workload.spiffe.io", "true"},
                                                                   {"workload.spiffe.io", "true"}}},
                                         HeaderCase{"capitalised", {{"workload.spiffe.io", "True"}}},
                                         HeaderCase{"false", {{"workload.spiffe.io", "false"}}},
                                         HeaderCase{"empty", {{"workload.spiffe.io", ""}}})),
    [](const auto& info) {
      std::string m = std::get<0>(info.param);
      return m.substr(m.rfind('/') + 1) + "_" + std::get<1>(info.param).name;
    });

// --- FetchX509SVID ---------------------------------------------------------------------------

TEST_F(WorkloadApiServiceTest, FetchX509SvidSendsTheSvidAtOnceWithKeyAndBundle) {
  auto c = call(kFetchX509Svid, X509SVIDRequest{});
  EXPECT_FALSE(c->final_status());  // the stream stays open
  ASSERT_EQ(c->sent().size(), 1u);
  auto r = c->sent_as<X509SVIDResponse>(0);
  ASSERT_EQ(r.svids_size(), 1);
  const X509SVID& s = r.svids(0);
  EXPECT_EQ(s.spiffe_id(), "spiffe://example.org/web");
  const auto& svid = store_->current()->svids.front();
  EXPECT_EQ(s.x509_svid(), svid.chain_der());
  EXPECT_EQ(s.x509_svid_key(), svid.private_key_pkcs8);
  EXPECT_EQ(s.bundle(), store_->current()->own_bundle()->authorities_der());
  EXPECT_TRUE(r.federated_bundles().empty());
  EXPECT_EQ(stat("fetch_x509_svid"), 1);
  EXPECT_EQ(stat("x509_svids_issued"), 1);
  EXPECT_EQ(stat("streams_active"), 1);
  EXPECT_EQ(store_->watcher_count(), 1u);

  c->cancel();
  c->manual_executor()->run();
  EXPECT_EQ(stat("streams_active"), 0);
  EXPECT_EQ(store_->watcher_count(), 0u);
}

TEST_F(WorkloadApiServiceTest, FetchX509SvidPushesTheNewSvidOnRotation) {
  auto c = call(kFetchX509Svid, X509SVIDRequest{});
  ASSERT_EQ(c->sent().size(), 1u);
  auto rotated = must(mint_certificate(leaf_for("spiffe://example.org/web"), &files_.ca));
  files_.write_atomically("cert.pem", rotated.cert_pem());
  files_.write_atomically("key.pem", rotated.key_pem());
  ASSERT_TRUE(store_->reload()) << store_->last_error();
  EXPECT_EQ(c->sent().size(), 1u);  // the store callback only posts
  c->manual_executor()->run();
  ASSERT_EQ(c->sent().size(), 2u);
  auto r = c->sent_as<X509SVIDResponse>(1);
  EXPECT_EQ(r.svids(0).x509_svid(), store_->current()->svids.front().chain_der());
  EXPECT_NE(r.svids(0).x509_svid(), c->sent_as<X509SVIDResponse>(0).svids(0).x509_svid());
  EXPECT_EQ(stat("pushes"), 1);
  EXPECT_EQ(stat("x509_svids_issued"), 2);
}

TEST_F(WorkloadApiServiceTest, ProtoEqualPublicationIsNotPushed) {
  auto store = std::make_shared<SwitchableStore>();
  store->publish(store_->current());
  use_store(store);
  auto c = call(kFetchX509Svid, X509SVIDRequest{});
  ASSERT_EQ(c->sent().size(), 1u);
  store->publish(store_->current());  // a new version, the same content
  c->manual_executor()->run();
  EXPECT_EQ(c->sent().size(), 1u);
  EXPECT_EQ(stat("pushes"), 0);
  EXPECT_EQ(stat("pushes_skipped"), 1);
  EXPECT_FALSE(c->final_status());
}

TEST_F(WorkloadApiServiceTest, WithdrawnIdentityEndsTheStreamWithPermissionDenied) {
  auto store = std::make_shared<SwitchableStore>();
  store->publish(store_->current());
  use_store(store);
  auto c = call(kFetchX509Svid, X509SVIDRequest{});
  ASSERT_EQ(c->sent().size(), 1u);
  store->publish(store_->current(), /*entitled=*/false);
  c->manual_executor()->run();
  ASSERT_TRUE(c->final_status());
  EXPECT_EQ(c->final_status()->code, StatusCode::kPermissionDenied);
  EXPECT_EQ(store->watchers(), 0u);
}

TEST_F(WorkloadApiServiceTest, CallerWithoutIdentityIsDeniedAndUnreadyStoreIsUnavailable) {
  auto store = std::make_shared<SwitchableStore>();
  use_store(store);
  auto c = call(kFetchX509Svid, X509SVIDRequest{});
  EXPECT_EQ(c->final_status()->code, StatusCode::kUnavailable);
  store->publish(store_->current(), /*entitled=*/false);
  for (const char* path : {kFetchX509Svid, kFetchX509Bundles, kFetchJwtBundles}) {
    c = call(path, X509SVIDRequest{});
    EXPECT_EQ(c->final_status()->code, StatusCode::kPermissionDenied) << path;
    EXPECT_EQ(c->final_status()->message, "no identity issued");
  }
  JWTSVIDRequest jr;
  jr.add_audience("db");
  EXPECT_EQ(call(kFetchJwtSvid, jr)->final_status()->code, StatusCode::kPermissionDenied);
  EXPECT_EQ(stat("permission_denied"), 4);
  EXPECT_EQ(stat("unavailable"), 1);
  EXPECT_EQ(store->watchers(), 0u);
}

// --- bundles ---------------------------------------------------------------------------------

TEST_F(WorkloadApiServiceTest, FetchX509BundlesKeysByTrustDomainId) {
  auto c = call(kFetchX509Bundles, X509BundlesRequest{});
  ASSERT_EQ(c->sent().size(), 1u);
  auto r = c->sent_as<X509BundlesResponse>(0);
  ASSERT_EQ(r.bundles().size(), 1u);
  EXPECT_EQ(r.bundles().at("spiffe://example.org"), store_->current()->own_bundle()->authorities_der());
  EXPECT_EQ(stat("fetch_x509_bundles"), 1);
}

TEST_F(WorkloadApiServiceTest, FetchJwtBundlesSendsJwtOnlySpiffeBundleJson) {
  auto c = call(kFetchJwtBundles, JWTBundlesRequest{});
  ASSERT_EQ(c->sent().size(), 1u);
  auto r = c->sent_as<JWTBundlesResponse>(0);
  ASSERT_EQ(r.bundles().size(), 1u);
  auto json = nlohmann::json::parse(r.bundles().at("spiffe://example.org"));
  ASSERT_EQ(json["keys"].size(), 1u);
  EXPECT_EQ(json["keys"][0]["use"], "jwt-svid");
  EXPECT_EQ(json["keys"][0]["kid"], store_->current()->jwt_signer->key_id());
  EXPECT_EQ(stat("fetch_jwt_bundles"), 1);
}

// --- JWT-SVIDs -------------------------------------------------------------------------------

TEST_F(WorkloadApiServiceTest, FetchJwtSvidRequiresAnAudience) {
  auto c = call(kFetchJwtSvid, JWTSVIDRequest{});
  EXPECT_EQ(c->final_status()->code, StatusCode::kInvalidArgument);
  EXPECT_EQ(c->final_status()->message, "audience must be specified");
  JWTSVIDRequest empty_aud;
  empty_aud.add_audience("");
  EXPECT_EQ(call(kFetchJwtSvid, empty_aud)->final_status()->code, StatusCode::kInvalidArgument);
}

TEST_F(WorkloadApiServiceTest, FetchJwtSvidSelectsBySpiffeId) {
  EXPECT_FALSE(fetch_jwt({"db"}, "spiffe://example.org/web").empty());
  JWTSVIDRequest req;
  req.add_audience("db");
  req.set_spiffe_id("spiffe://example.org/other");
  EXPECT_EQ(call(kFetchJwtSvid, req)->final_status()->code, StatusCode::kPermissionDenied);
  req.set_spiffe_id("not-an-id");
  EXPECT_EQ(call(kFetchJwtSvid, req)->final_status()->code, StatusCode::kInvalidArgument);
}

TEST_F(WorkloadApiServiceTest, JwtSvidRoundTripsThroughValidate) {
  std::string token = fetch_jwt({"db", "cache"});
  ASSERT_FALSE(token.empty());
  EXPECT_EQ(stat("jwt_svids_issued"), 1);
  ValidateJWTSVIDRequest req;
  req.set_audience("cache");
  req.set_svid(token);
  auto c = call(kValidateJwtSvid, req);
  ASSERT_EQ(c->final_status()->code, StatusCode::kOk) << c->final_status()->message;
  auto r = c->sent_as<ValidateJWTSVIDResponse>(0);
  EXPECT_EQ(r.spiffe_id(), "spiffe://example.org/web");
  const auto& fields = r.claims().fields();
  EXPECT_EQ(fields.at("sub").string_value(), "spiffe://example.org/web");
  ASSERT_EQ(fields.at("aud").list_value().values_size(), 2);
  EXPECT_EQ(fields.at("aud").list_value().values(1).string_value(), "cache");
  EXPECT_GT(fields.at("exp").number_value(), fields.at("iat").number_value());
  EXPECT_EQ(fields.at("exp").number_value() - fields.at("iat").number_value(), 300);

  req.set_audience("billing");
  c = call(kValidateJwtSvid, req);
  EXPECT_EQ(c->final_status()->code, StatusCode::kInvalidArgument);
  EXPECT_NE(c->final_status()->message.find("audience_mismatch"), std::string::npos) << c->final_status()->message;
  req.set_audience("db");
  req.set_svid(token.substr(0, token.size() - 4) + "AAAA");
  EXPECT_EQ(call(kValidateJwtSvid, req)->final_status()->code, StatusCode::kInvalidArgument);
  EXPECT_EQ(stat("jwt_validation_failed"), 2);
}

TEST_F(WorkloadApiServiceTest, ValidateRequiresAudienceAndSvid) {
  ValidateJWTSVIDRequest req;
  req.set_svid("a.b.c");
  auto c = call(kValidateJwtSvid, req);
  EXPECT_EQ(c->final_status()->code, StatusCode::kInvalidArgument);
  EXPECT_EQ(c->final_status()->message, "audience must be specified");
  req.set_svid("");
  req.set_audience("db");
  c = call(kValidateJwtSvid, req);
  EXPECT_EQ(c->final_status()->code, StatusCode::kInvalidArgument);
  EXPECT_EQ(c->final_status()->message, "svid must be specified");
}

// --- audit and stats -------------------------------------------------------------------------

TEST_F(WorkloadApiServiceTest, EveryIssuedSvidIsAuditedWithTheCaller) {
  auto c = call(kFetchX509Svid, X509SVIDRequest{});
  fetch_jwt({"db"});
  auto lines = audit_lines();
  ASSERT_EQ(lines.size(), 2u);
  auto x509 = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(x509["decision"], "issue");
  EXPECT_EQ(x509["policy"], "x509_svid");
  EXPECT_EQ(x509["peer_spiffe_id"], "spiffe://example.org/web");
  EXPECT_EQ(x509["caller_pid"], 4242);
  EXPECT_EQ(x509["caller_uid"], 1000);
  EXPECT_EQ(x509["caller_gid"], 1001);
  EXPECT_EQ(x509["cert_serial"], leaf_serial_hex(store_->current()->svids.front().chain_der()));
  EXPECT_FALSE(x509["cert_serial"].get<std::string>().empty());
  auto jwt = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(jwt["policy"], "jwt_svid");
  EXPECT_EQ(jwt["reason"], "FetchJWTSVID aud=db");
  EXPECT_EQ(jwt["caller_pid"], 4242);
}

TEST_F(WorkloadApiServiceTest, StatNamesAreStable) {
  std::string text = stats_.render_text();
  for (const char* name : {"fetch_jwt_bundles", "fetch_jwt_svid", "fetch_x509_bundles", "fetch_x509_svid",
                           "invalid_argument", "jwt_svids_issued", "jwt_validation_failed", "permission_denied",
                           "pushes", "pushes_skipped", "security_header_missing", "unavailable",
                           "validate_jwt_svid", "x509_svids_issued", "streams_active"}) {
    EXPECT_EQ(stat(name), 0) << name;
  }
}

}  // namespace
}  // namespace portcullis::attest
