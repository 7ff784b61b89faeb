// The SDS server on FakeServerCall: SPIRE's resource names and payload encodings, state of the
// world (first answer, ACK, NACK, stale nonce, resource_names change), rotation pushes,
// FetchSecrets and DeltaSecrets, and the `sds.` stats.
#include "mtls/sds/sds_service.h"

#include <openssl/bytestring.h>
#include <openssl/mem.h>

#include <gtest/gtest.h>

#include "common/grpc/fake_server_call.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls_spiffe_validator_config.pb.h"
#include "mtls/sds/secret_builder.h"
#include "test_certs.h"

namespace portcullis::mtls {
namespace {

namespace tls = ::envoy::extensions::transport_sockets::tls::v3;
using ::envoy::service::discovery::v3::DiscoveryRequest;
using ::envoy::service::discovery::v3::DiscoveryResponse;
using grpc::FakeServerCall;
using grpc::StatusCode;
using testing::ca_spec;
using testing::must;

constexpr const char* kWeb = "spiffe://example.org/web";

std::string der_of(X509* cert) {
  uint8_t* buf = nullptr;
  int len = i2d_X509(cert, &buf);
  std::string out(reinterpret_cast<char*>(buf), len);
  OPENSSL_free(buf);
  return out;
}

std::string pkcs8_of(EVP_PKEY* key) {
  bssl::ScopedCBB cbb;
  CBB_init(cbb.get(), 0);
  EVP_marshal_private_key(cbb.get(), key);
  return std::string(reinterpret_cast<const char*>(CBB_data(cbb.get())), CBB_len(cbb.get()));
}

std::shared_ptr<const TrustBundle> bundle_of(const std::string& td, const MintedCert& ca) {
  std::vector<bssl::UniquePtr<X509>> certs;
  X509_up_ref(ca.cert.get());
  certs.emplace_back(ca.cert.get());
  return std::make_shared<const TrustBundle>(td, std::move(certs), 1);
}

// FakeStore publishes hand-built snapshots and notifies on the test thread.
class FakeStore : public SvidStore {
 public:
  std::shared_ptr<const IdentitySnapshot> current() const override { return snapshot_; }
  std::shared_ptr<const IdentitySnapshot> for_caller(const CallerInfo& caller) const override {
    last_caller = caller;
    return snapshot_;
  }
  SvidSubscription subscribe(Callback callback) override { return watchers_.subscribe(std::move(callback)); }
  void publish(std::shared_ptr<const IdentitySnapshot> s) {
    snapshot_ = std::move(s);
    watchers_.notify(snapshot_->version);
  }
  mutable CallerInfo last_caller;

 private:
  std::shared_ptr<const IdentitySnapshot> snapshot_;
  SvidWatchers watchers_;
};

class SdsServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = must(mint_certificate(ca_spec("example.org CA", "example.org"), nullptr));
    other_ca_ = must(mint_certificate(ca_spec("other CA", "other.org"), nullptr));
    store_->publish(snapshot(1));
    SdsConfig config;
    service_ = SdsService::create(store_, config, stats_);
    ASSERT_TRUE(SdsService::register_with(service_, registry_).ok());
  }

  // snapshot mints a fresh leaf for kWeb (a new serial each time) unless `same_as` is given.
  std::shared_ptr<const IdentitySnapshot> snapshot(uint64_t version, const IdentitySnapshot* same_as = nullptr) {
    auto s = std::make_shared<IdentitySnapshot>();
    s->version = version;
    s->trust_domain = "example.org";
    X509Svid svid;
    svid.spiffe_id = kWeb;
    if (same_as) {
      svid.certificates_der = same_as->svids[0].certificates_der;
      svid.private_key_pkcs8 = same_as->svids[0].private_key_pkcs8;
    } else {
      CertSpec spec;
      spec.uri_sans = {kWeb};
      auto leaf = must(mint_certificate(spec, &ca_));
      svid.certificates_der = {der_of(leaf.cert.get())};
      svid.private_key_pkcs8 = pkcs8_of(leaf.key.get());
      leaf_pem_ = leaf.cert_pem();
    }
    s->svids.push_back(std::move(svid));
    s->bundles.add(bundle_of("example.org", ca_));
    s->bundles.add(bundle_of("other.org", other_ca_));
    return s;
  }

  std::shared_ptr<FakeServerCall> open() {
    grpc::ServerCallContext ctx;
    auto peer = std::make_shared<grpc::PeerInfo>();
    peer->transport = grpc::PeerInfo::Transport::kUnix;
    peer->credentials = grpc::PeerCredentials{4242, 1000, 1000};
    ctx.peer = peer;
    return grpc::start_fake_call(registry_, SdsService::kStreamPath, "", std::move(ctx));
  }

  static DiscoveryRequest request(std::vector<std::string> names, const std::string& version = "",
                                  const std::string& nonce = "") {
    DiscoveryRequest r;
    r.mutable_node()->set_id("envoy-1");
    r.set_type_url(kSecretTypeUrl);
    for (auto& n : names) r.add_resource_names(n);
    r.set_version_info(version);
    r.set_response_nonce(nonce);
    return r;
  }

  static DiscoveryRequest ack(const DiscoveryResponse& resp, std::vector<std::string> names) {
    return request(std::move(names), resp.version_info(), resp.nonce());
  }

  static std::vector<tls::Secret> secrets_of(const DiscoveryResponse& resp) {
    std::vector<tls::Secret> out;
    for (const auto& any : resp.resources()) {
      EXPECT_EQ(any.type_url(), kSecretTypeUrl);
      tls::Secret s;
      EXPECT_TRUE(any.UnpackTo(&s));
      out.push_back(s);
    }
    return out;
  }

  grpc::GrpcResult<std::vector<tls::Secret>> fetch(std::vector<std::string> names, DiscoveryRequest req = {}) {
    for (auto& n : names) req.add_resource_names(n);
    auto call = grpc::start_fake_call(registry_, SdsService::kFetchPath, req.SerializeAsString());
    EXPECT_TRUE(call->final_status().has_value());
    if (!call->final_status()->ok()) return *call->final_status();
    auto resp = call->sent_as<DiscoveryResponse>(0);
    EXPECT_EQ(resp.version_info(), "");
    EXPECT_EQ(resp.nonce(), "");
    EXPECT_EQ(resp.type_url(), kSecretTypeUrl);
    return secrets_of(resp);
  }

  int64_t stat(const std::string& name) const { return stats_.value("sds." + name).value_or(-1); }

  StatsStore stats_;
  MintedCert ca_, other_ca_;
  std::string leaf_pem_;
  std::shared_ptr<FakeStore> store_ = std::make_shared<FakeStore>();
  std::shared_ptr<SdsService> service_;
  grpc::ServiceRegistry registry_;
};

TEST_F(SdsServiceTest, FirstRequestIsAnsweredWithTheDefaultSvid) {
  auto call = open();
  call->deliver_message(request({"default"}));
  ASSERT_EQ(call->sent().size(), 1u);
  auto resp = call->sent_as<DiscoveryResponse>(0);
  EXPECT_EQ(resp.type_url(), kSecretTypeUrl);
  EXPECT_EQ(resp.version_info(), "1");
  EXPECT_EQ(resp.nonce().size(), 8u);
  EXPECT_EQ(resp.nonce().find_first_not_of("0123456789abcdef"), std::string::npos);
  auto secrets = secrets_of(resp);
  ASSERT_EQ(secrets.size(), 1u);
  EXPECT_EQ(secrets[0].name(), "default");
  ASSERT_TRUE(secrets[0].has_tls_certificate());
  EXPECT_EQ(secrets[0].tls_certificate().certificate_chain().inline_bytes(), leaf_pem_);
  EXPECT_EQ(secrets[0].tls_certificate().private_key().inline_bytes().rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u);
  EXPECT_EQ(stat("responses_sent"), 1);
  EXPECT_EQ(stat("streams_active"), 1);
  ASSERT_TRUE(store_->last_caller.pid.has_value());
  EXPECT_EQ(*store_->last_caller.pid, 4242);
  EXPECT_EQ(*store_->last_caller.uid, 1000u);
}

TEST_F(SdsServiceTest, AckIsNotAnsweredAndNackIsCounted) {
  auto call = open();
  call->deliver_message(request({"default"}));
  auto resp = call->sent_as<DiscoveryResponse>(0);
  call->deliver_message(ack(resp, {"default"}));
  EXPECT_EQ(call->sent().size(), 1u);
  EXPECT_EQ(stat("acks"), 1);

  auto nack = request({"default"}, "", resp.nonce());
  nack.mutable_error_detail()->set_code(3);
  nack.mutable_error_detail()->set_message("bad certificate");
  call->deliver_message(nack);
  call->deliver_message(nack);
  EXPECT_EQ(call->sent().size(), 1u);
  EXPECT_EQ(stat("nacks"), 2);
  EXPECT_EQ(stat("acks"), 1);
  EXPECT_FALSE(call->done());
}

TEST_F(SdsServiceTest, StaleNonceIsIgnored) {
  auto call = open();
  call->deliver_message(request({"default"}));
  auto first = call->sent_as<DiscoveryResponse>(0);
  call->deliver_message(ack(first, {"default", "ROOTCA"}));
  ASSERT_EQ(call->sent().size(), 2u);
  // A request still answering the first response, asking for something else: stale.
  call->deliver_message(request({"spiffe://other.org"}, first.version_info(), first.nonce()));
  EXPECT_EQ(call->sent().size(), 2u);
  EXPECT_EQ(stat("stale_requests"), 1);
  EXPECT_FALSE(call->done());
}

TEST_F(SdsServiceTest, ResourceNamesChangeIsAnsweredAgain) {
  auto call = open();
  call->deliver_message(request({"default"}));
  auto first = call->sent_as<DiscoveryResponse>(0);
  call->deliver_message(ack(first, {"ROOTCA", "default"}));
  ASSERT_EQ(call->sent().size(), 2u);
  auto second = call->sent_as<DiscoveryResponse>(1);
  EXPECT_EQ(second.version_info(), "1");
  EXPECT_NE(second.nonce(), first.nonce());
  auto secrets = secrets_of(second);
  ASSERT_EQ(secrets.size(), 2u);
  EXPECT_EQ(secrets[0].name(), "ROOTCA");
  EXPECT_EQ(secrets[1].name(), "default");
  // The same set in another order is no change.
  call->deliver_message(ack(second, {"default", "ROOTCA", "default"}));
  EXPECT_EQ(call->sent().size(), 2u);
}

TEST_F(SdsServiceTest, RotationPushesANewVersionOnlyWhenSomethingChanged) {
  auto call = open();
  auto other = open();
  call->deliver_message(request({"default"}));
  other->deliver_message(request({"ROOTCA"}));
  auto first = call->sent_as<DiscoveryResponse>(0);
  call->deliver_message(ack(first, {"default"}));

  store_->publish(snapshot(2));
  call->manual_executor()->run();
  other->manual_executor()->run();
  ASSERT_EQ(call->sent().size(), 2u);
  auto pushed = call->sent_as<DiscoveryResponse>(1);
  EXPECT_EQ(pushed.version_info(), "2");
  EXPECT_EQ(secrets_of(pushed)[0].tls_certificate().certificate_chain().inline_bytes(), leaf_pem_);
  EXPECT_NE(pushed.nonce(), first.nonce());
  // ROOTCA did not change: nothing to push.
  EXPECT_EQ(other->sent().size(), 1u);
  EXPECT_EQ(stat("rotation_pushes"), 1);

  // A new snapshot with the same material: no push.
  auto current = store_->current();
  store_->publish(snapshot(3, current.get()));
  call->manual_executor()->run();
  other->manual_executor()->run();  // (a queued task holds its call: run it, as a loop would)
  EXPECT_EQ(call->sent().size(), 2u);
  EXPECT_EQ(other->sent().size(), 1u);
  EXPECT_EQ(stat("rotation_pushes"), 1);
  EXPECT_EQ(stat("responses_sent"), 3);
}

TEST_F(SdsServiceTest, RequestWithoutNodeKeepsThePreviousNode) {
  auto call = open();
  auto first = request({"ROOTCA"});
  first.mutable_node()->mutable_user_agent_build_version()->mutable_version()->set_major_number(1);
  first.mutable_node()->mutable_user_agent_build_version()->mutable_version()->set_minor_number(17);
  call->deliver_message(first);
  auto resp = call->sent_as<DiscoveryResponse>(0);
  EXPECT_TRUE(secrets_of(resp)[0].validation_context().has_trusted_ca());
  auto next = ack(resp, {"ROOTCA", "default"});
  next.clear_node();
  call->deliver_message(next);
  ASSERT_EQ(call->sent().size(), 2u);
  EXPECT_TRUE(secrets_of(call->sent_as<DiscoveryResponse>(1))[0].validation_context().has_trusted_ca());
}

TEST_F(SdsServiceTest, HalfCloseEndsTheStream) {
  auto call = open();
  call->deliver_message(request({"default"}));
  call->half_close();
  ASSERT_TRUE(call->final_status().has_value());
  EXPECT_TRUE(call->final_status()->ok());
}

TEST_F(SdsServiceTest, StreamEndUnregisters) {
  auto call = open();
  call->deliver_message(request({"default"}));
  EXPECT_EQ(service_->open_streams(), 1u);
  call->cancel();
  call->manual_executor()->run();
  EXPECT_EQ(service_->open_streams(), 0u);
  EXPECT_EQ(stat("streams_active"), 0);
  store_->publish(snapshot(2));  // no stream left to post to
  EXPECT_EQ(call->manual_executor()->run(), 0u);
}

TEST_F(SdsServiceTest, UnknownNameFailsTheStreamWithSpiresMessage) {
  auto call = open();
  call->deliver_message(request({"default", "spiffe://example.org/db", "nope"}));
  ASSERT_TRUE(call->final_status().has_value());
  EXPECT_EQ(call->final_status()->code, StatusCode::kInvalidArgument);
  EXPECT_EQ(call->final_status()->message,
            "workload is not authorized for the requested identities [\"nope\" \"spiffe://example.org/db\"]");
  EXPECT_EQ(stat("unknown_resource_errors"), 1);
}

TEST_F(SdsServiceTest, WrongTypeUrlIsRefused) {
  auto call = open();
  auto r = request({"default"});
  r.set_type_url("type.googleapis.com/envoy.config.cluster.v3.Cluster");
  call->deliver_message(r);
  ASSERT_TRUE(call->final_status().has_value());
  EXPECT_EQ(call->final_status()->code, StatusCode::kInvalidArgument);
}

TEST_F(SdsServiceTest, RootcaIsTheOwnBundleInSpiffeOrLegacyForm) {
  // No build version: SPIRE HEAD assumes the SPIFFE validator.
  auto spiffe = fetch({"ROOTCA"});
  ASSERT_TRUE(spiffe.ok());
  ASSERT_EQ(spiffe.value().size(), 1u);
  const auto& vc = spiffe.value()[0].validation_context();
  EXPECT_EQ(spiffe.value()[0].name(), "ROOTCA");
  EXPECT_EQ(vc.custom_validator_config().name(), kSpiffeValidatorName);
  tls::SPIFFECertValidatorConfig cfg;
  ASSERT_TRUE(vc.custom_validator_config().typed_config().UnpackTo(&cfg));
  EXPECT_EQ(vc.custom_validator_config().typed_config().type_url(),
            "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig");
  ASSERT_EQ(cfg.trust_domains_size(), 1);
  EXPECT_EQ(cfg.trust_domains(0).name(), "example.org");
  EXPECT_EQ(cfg.trust_domains(0).trust_bundle().inline_bytes(), ca_.cert_pem());

  // Envoy 1.17 gets trusted_ca, as does a node asking for it in metadata.
  DiscoveryRequest old;
  auto* v = old.mutable_node()->mutable_user_agent_build_version()->mutable_version();
  v->set_major_number(1);
  v->set_minor_number(17);
  auto legacy = fetch({"ROOTCA"}, old);
  ASSERT_TRUE(legacy.ok());
  EXPECT_EQ(legacy.value()[0].validation_context().trusted_ca().inline_bytes(), ca_.cert_pem());
  EXPECT_FALSE(legacy.value()[0].validation_context().has_custom_validator_config());
  DiscoveryRequest meta;
  (*meta.mutable_node()->mutable_metadata()->mutable_fields())["disable_spiffe_cert_validation"].set_bool_value(true);
  EXPECT_TRUE(fetch({"ROOTCA"}, meta).value()[0].validation_context().has_trusted_ca());
  v->set_minor_number(18);
  EXPECT_TRUE(fetch({"ROOTCA"}, old).value()[0].validation_context().has_custom_validator_config());
}

TEST_F(SdsServiceTest, AllListsEveryTrustDomainAndFailsInLegacyMode) {
  auto all = fetch({"ALL"});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all.value().size(), 1u);
  EXPECT_EQ(all.value()[0].name(), "ALL");
  tls::SPIFFECertValidatorConfig cfg;
  ASSERT_TRUE(all.value()[0].validation_context().custom_validator_config().typed_config().UnpackTo(&cfg));
  ASSERT_EQ(cfg.trust_domains_size(), 2);
  EXPECT_EQ(cfg.trust_domains(0).name(), "example.org");
  EXPECT_EQ(cfg.trust_domains(1).name(), "other.org");
  EXPECT_EQ(cfg.trust_domains(1).trust_bundle().inline_bytes(), other_ca_.cert_pem());

  DiscoveryRequest legacy;
  legacy.mutable_node()->mutable_user_agent_build_version()->mutable_version()->set_major_number(1);
  auto refused = fetch({"ALL"}, legacy);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code, StatusCode::kInternal);
}

TEST_F(SdsServiceTest, TrustDomainAndSpiffeIdNames) {
  auto got = fetch({"spiffe://other.org", kWeb, "spiffe://example.org"});
  ASSERT_TRUE(got.ok()) << got.status().message;
  ASSERT_EQ(got.value().size(), 3u);
  EXPECT_EQ(got.value()[0].name(), "spiffe://example.org");
  EXPECT_TRUE(got.value()[0].has_validation_context());
  EXPECT_EQ(got.value()[1].name(), "spiffe://other.org");
  tls::SPIFFECertValidatorConfig cfg;
  ASSERT_TRUE(got.value()[1].validation_context().custom_validator_config().typed_config().UnpackTo(&cfg));
  EXPECT_EQ(cfg.trust_domains(0).name(), "other.org");
  EXPECT_EQ(got.value()[2].name(), kWeb);
  EXPECT_EQ(got.value()[2].tls_certificate().certificate_chain().inline_bytes(), leaf_pem_);
}

TEST_F(SdsServiceTest, EmptyNamesReturnEverythingNamedById) {
  auto got = fetch({});
  ASSERT_TRUE(got.ok());
  std::vector<std::string> names;
  for (const auto& s : got.value()) names.push_back(s.name());
  EXPECT_EQ(names, (std::vector<std::string>{"spiffe://example.org", "spiffe://other.org", kWeb}));
}

TEST_F(SdsServiceTest, OnlyOneOwnBundleFormPerRequest) {
  // SPIRE serves one of {own trust domain ID, ROOTCA, ALL}; the other stays unserved.
  auto got = fetch({"ROOTCA", "spiffe://example.org"});
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code, StatusCode::kInvalidArgument);
  EXPECT_EQ(got.status().message, "workload is not authorized for the requested identities [\"ROOTCA\"]");
  // Likewise `default` next to the first SVID's own ID.
  EXPECT_FALSE(fetch({"default", kWeb}).ok());
  EXPECT_EQ(stat("unknown_resource_errors"), 2);
}

TEST_F(SdsServiceTest, CustomNamesFromConfig) {
  SdsConfig config;
  config.names.default_bundle = "null";
  config.names.all_bundles = "ROOTCA";
  auto service = SdsService::create(store_, config, stats_);
  grpc::ServiceRegistry registry;
  ASSERT_TRUE(SdsService::register_with(service, registry).ok());
  DiscoveryRequest req;
  req.add_resource_names("ROOTCA");
  auto call = grpc::start_fake_call(registry, SdsService::kFetchPath, req.SerializeAsString());
  auto secrets = secrets_of(call->sent_as<DiscoveryResponse>(0));
  tls::SPIFFECertValidatorConfig cfg;
  ASSERT_TRUE(secrets.at(0).validation_context().custom_validator_config().typed_config().UnpackTo(&cfg));
  EXPECT_EQ(cfg.trust_domains_size(), 2);  // Istio's ROOTCA = all bundles
}

TEST_F(SdsServiceTest, DeltaSecretsIsUnimplemented) {
  auto call = grpc::start_fake_call(registry_, SdsService::kDeltaPath, "");
  ASSERT_TRUE(call->final_status().has_value());
  EXPECT_EQ(call->final_status()->code, StatusCode::kUnimplemented);
}

TEST_F(SdsServiceTest, StatNames) {
  for (const char* name : {"acks", "nacks", "responses_sent", "rotation_pushes", "stale_requests", "streams_active",
                           "unknown_resource_errors"}) {
    EXPECT_EQ(stat(name), 0) << name;
  }
}

}  // namespace
}  // namespace portcullis::mtls
