// TLS contexts served from the built-in identity: a named SVID and ROOTCA from a StaticSvidStore
// (rebuilt on rotation, live contexts untouched), and `default` per caller through a lookup hook,
// with real handshakes against the contexts it hands out.
#include "mtls/builtin_identity_selector.h"

#include <gtest/gtest.h>

#include "identity_files.h"
#include "mtls/static_identity.h"
#include "mtls/static_svid_store.h"
#include "tests/unit/mtls/tls_pair.h"

namespace portcullis::mtls {
namespace {

using testing::IdentityFiles;
using testing::leaf_for;
using testing::must;
using testing::TlsPair;

// PerUidStore is a hand-written attested store: each uid has its own view (its own SVID), other
// callers get none. Publishing a view bumps the store's version and notifies.
class PerUidStore final : public SvidStore {
 public:
  void publish(uint32_t uid, std::shared_ptr<IdentitySnapshot> view) {
    view->version = ++version_;
    views_[uid] = std::move(view);
    watchers_.notify(version_);
  }
  std::shared_ptr<const IdentitySnapshot> current() const override {
    return views_.empty() ? nullptr : views_.begin()->second;
  }
  std::shared_ptr<const IdentitySnapshot> for_caller(const CallerInfo& caller) const override {
    auto it = caller.uid ? views_.find(*caller.uid) : views_.end();
    return it == views_.end() ? nullptr : it->second;
  }
  SvidSubscription subscribe(Callback callback) override { return watchers_.subscribe(std::move(callback)); }

 private:
  std::map<uint32_t, std::shared_ptr<const IdentitySnapshot>> views_;
  SvidWatchers watchers_;
  uint64_t version_ = 0;
};

std::shared_ptr<IdentitySnapshot> snapshot_of(const MintedCert& svid, const MintedCert& ca) {
  IdentityConfig c;
  c.trust_domain = "example.org";
  c.certificate_chain = DataSource{"", svid.cert_pem()};
  c.private_key = DataSource{"", svid.key_pem()};
  c.trust_bundle = DataSource{"", ca.cert_pem()};
  auto loaded = load_static_identity(c);
  EXPECT_TRUE(loaded.ok()) << (loaded.ok() ? "" : loaded.error().message);
  return loaded.ok() ? loaded->snapshot : nullptr;
}

TlsContextConfig builtin_server(BuiltinSecret certificate) {
  TlsContextConfig c;
  c.server = true;
  c.require_client_certificate = true;
  c.certificate_builtin = std::move(certificate);
  c.validation_builtin = BuiltinSecret{BuiltinSecret::Kind::kRootCa, "ROOTCA", ""};
  return c;
}

ConnectionContext connection(ConnectionContext::Side side = ConnectionContext::Side::kCluster) {
  ConnectionContext c;
  c.side = side;
  return c;
}

class BuiltinIdentitySelectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    files_.write_all(files_.leaf, files_.ca);
    auto store = StaticSvidStore::create(files_.config(), stats_);
    ASSERT_TRUE(store.ok()) << store.error().message;
    static_store_ = std::move(store.value());
  }
  std::shared_ptr<const TlsContext> client_context() {
    return testing::build(testing::context_config(false, client_leaf_, files_.ca, "example.org"));
  }
  // presented returns the SPIFFE ID and serial a client sees when it handshakes with `server`.
  std::string presented(const std::shared_ptr<const TlsContext>& server) {
    TlsPair p(client_context(), server);
    std::string r = p.handshake();
    if (r != "ok") return r;
    return p.client->peer()->spiffe_id + " " + p.client->peer()->serial;
  }
  std::string serial_of(const MintedCert& c) { return certificate_details(c.cert.get(), "").serial_number; }
  int64_t stat(const std::string& name) const { return stats_.value("identity.builtin." + name).value_or(-1); }

  IdentityFiles files_;
  StatsStore stats_;
  std::shared_ptr<StaticSvidStore> static_store_;
  MintedCert client_leaf_ = must(mint_certificate(leaf_for("spiffe://example.org/client"), &files_.ca));
};

TEST_F(BuiltinIdentitySelectorTest, NamedSvidAndRootCaFollowRotationWithoutDisturbingLiveContexts) {
  auto selector = BuiltinIdentitySelector::create(
      builtin_server({BuiltinSecret::Kind::kSvid, "spiffe://example.org/web", ""}), static_store_, nullptr, {}, stats_);
  ASSERT_TRUE(selector.ok()) << selector.error().message;
  auto first = (*selector)->context_for(connection());
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(presented(*first), "spiffe://example.org/web " + serial_of(files_.leaf));
  EXPECT_EQ((*selector)->context_for(connection()).value(), *first);  // one context until the store changes

  auto next = must(mint_certificate(leaf_for("spiffe://example.org/web"), &files_.ca));
  files_.write_atomically("cert.pem", next.cert_pem());
  files_.write_atomically("key.pem", next.key_pem());
  ASSERT_TRUE(static_store_->reload()) << static_store_->last_error();
  auto second = (*selector)->context_for(connection());
  ASSERT_TRUE(second.ok());
  EXPECT_NE(second.value(), *first);
  EXPECT_EQ(presented(*second), "spiffe://example.org/web " + serial_of(next));
  EXPECT_EQ(presented(*first), "spiffe://example.org/web " + serial_of(files_.leaf));  // live connections keep theirs
  EXPECT_EQ(stat("contexts_built"), 1);
}

TEST_F(BuiltinIdentitySelectorTest, ValidationFromRootCaRejectsAnotherTrustDomain) {
  auto selector = BuiltinIdentitySelector::create(
      builtin_server({BuiltinSecret::Kind::kSvid, "spiffe://example.org/web", ""}), static_store_, nullptr, {}, stats_);
  ASSERT_TRUE(selector.ok());
  MintedCert other_ca = testing::make_ca("other.org");
  MintedCert stranger = testing::make_leaf("spiffe://other.org/client", other_ca);
  TlsPair p(testing::build(testing::context_config(false, stranger, files_.ca, "example.org")),
            (*selector)->context_for(connection()).value());
  EXPECT_NE(p.handshake(), "ok");
  ASSERT_TRUE(p.server->verify_error());
  EXPECT_EQ(p.server->verify_error()->reason, SvidRejection::kUnknownTrustDomain);
}

TEST_F(BuiltinIdentitySelectorTest, MissingSvidOrBundleFailsAtCreateWithTheName) {
  auto selector = BuiltinIdentitySelector::create(
      builtin_server({BuiltinSecret::Kind::kSvid, "spiffe://example.org/nope", ""}), static_store_, nullptr, {}, stats_);
  ASSERT_FALSE(selector.ok());
  EXPECT_NE(selector.error().message.find("holds no SVID spiffe://example.org/nope"), std::string::npos);
  auto config = builtin_server({BuiltinSecret::Kind::kSvid, "spiffe://example.org/web", ""});
  config.validation_builtin = BuiltinSecret{BuiltinSecret::Kind::kTrustDomain, "spiffe://other.org", ""};
  selector = BuiltinIdentitySelector::create(config, static_store_, nullptr, {}, stats_);
  ASSERT_FALSE(selector.ok());
  EXPECT_NE(selector.error().message.find("no bundle for spiffe://other.org"), std::string::npos) << selector.error().message;
  selector = BuiltinIdentitySelector::create(config, nullptr, nullptr, {}, stats_);
  ASSERT_FALSE(selector.ok());
}

TEST_F(BuiltinIdentitySelectorTest, DefaultServesEachAttestedCallerItsOwnSvidFromABoundedCache) {
  auto store = std::make_shared<PerUidStore>();
  MintedCert alice = must(mint_certificate(leaf_for("spiffe://example.org/alice"), &files_.ca));
  MintedCert bob = must(mint_certificate(leaf_for("spiffe://example.org/bob"), &files_.ca));
  store->publish(1000, snapshot_of(alice, files_.ca));
  store->publish(1001, snapshot_of(bob, files_.ca));
  int lookups = 0;
  uint32_t next_uid = 1000;
  CallerLookup lookup = [&](const ConnectionContext& c) -> std::optional<CallerInfo> {
    ++lookups;
    EXPECT_EQ(c.side, ConnectionContext::Side::kCluster);
    CallerInfo info;
    info.uid = next_uid;
    info.selectors = {"unix:uid:" + std::to_string(next_uid)};
    return info;
  };
  BuiltinIdentityOptions options;
  options.max_cached_contexts = 1;
  auto selector = BuiltinIdentitySelector::create(builtin_server({BuiltinSecret::Kind::kDefault, "default", ""}), store,
                                                  lookup, options, stats_);
  ASSERT_TRUE(selector.ok()) << selector.error().message;

  auto a1 = (*selector)->context_for(connection());
  ASSERT_TRUE(a1.ok()) << a1.error().message;
  EXPECT_EQ(presented(*a1), "spiffe://example.org/alice " + serial_of(alice));
  EXPECT_EQ((*selector)->context_for(connection()).value(), *a1);  // cached per (ID, version)
  next_uid = 1001;
  auto b1 = (*selector)->context_for(connection());
  ASSERT_TRUE(b1.ok());
  EXPECT_EQ(presented(*b1), "spiffe://example.org/bob " + serial_of(bob));
  EXPECT_EQ((*selector)->cached_contexts(), 1u);  // the bound evicted alice's
  EXPECT_EQ(lookups, 3);

  // Alice's SVID rotates: her view's version changes and the next connection gets the new one.
  MintedCert alice2 = must(mint_certificate(leaf_for("spiffe://example.org/alice"), &files_.ca));
  store->publish(1000, snapshot_of(alice2, files_.ca));
  next_uid = 1000;
  auto a2 = (*selector)->context_for(connection());
  ASSERT_TRUE(a2.ok());
  EXPECT_EQ(presented(*a2), "spiffe://example.org/alice " + serial_of(alice2));
  EXPECT_EQ(stat("contexts_built"), 3);
}

TEST_F(BuiltinIdentitySelectorTest, UnattestedCallersAreRefusedOrGivenTheFallback) {
  auto store = std::make_shared<PerUidStore>();
  MintedCert legacy = must(mint_certificate(leaf_for("spiffe://example.org/legacy"), &files_.ca));
  store->publish(1000, snapshot_of(legacy, files_.ca));
  std::optional<CallerInfo> who;
  CallerLookup lookup = [&](const ConnectionContext&) { return who; };
  auto refusing = BuiltinIdentitySelector::create(builtin_server({BuiltinSecret::Kind::kDefault, "default", ""}), store,
                                                  lookup, {}, stats_);
  ASSERT_TRUE(refusing.ok());
  auto r = (*refusing)->context_for(connection());  // nobody could be attested
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(r.error().message, "unattested caller: the calling process could not be attested");
  who = CallerInfo{4242, 2000, 2000, {"unix:uid:2000"}};  // attested, but no entry matches
  r = (*refusing)->context_for(connection());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "unattested caller: pid 4242 uid 2000 1 selectors matches no registration entry with a valid SVID (none matched, or issuance failed or expired)");
  r = (*refusing)->context_for(connection(ConnectionContext::Side::kListener));
  EXPECT_EQ(stat("unattested_callers"), 3);

  auto falling_back = BuiltinIdentitySelector::create(
      builtin_server({BuiltinSecret::Kind::kDefault, "default", "spiffe://example.org/legacy"}), store, lookup, {}, stats_);
  ASSERT_TRUE(falling_back.ok()) << falling_back.error().message;
  auto fb = (*falling_back)->context_for(connection());
  ASSERT_TRUE(fb.ok());
  EXPECT_EQ(presented(*fb), "spiffe://example.org/legacy " + serial_of(legacy));
  EXPECT_EQ(stat("unattested_fallbacks"), 1);
  EXPECT_EQ(stat("unattested_callers"), 3);
}

TEST_F(BuiltinIdentitySelectorTest, AClientContextWithFileCertificateTakesItsBundlesFromTheIdentity) {
  auto config = testing::context_config(false, client_leaf_, files_.ca, "example.org");
  config.trust_domains.clear();
  config.validation_builtin = BuiltinSecret{BuiltinSecret::Kind::kAllBundles, "ALL", ""};
  auto selector = BuiltinIdentitySelector::create(config, static_store_, nullptr, {}, stats_);
  ASSERT_TRUE(selector.ok()) << selector.error().message;
  auto server = testing::build(testing::context_config(true, files_.leaf, files_.ca, "example.org"));
  TlsPair p((*selector)->context_for(connection()).value(), server);
  ASSERT_EQ(p.handshake(), "ok");
  EXPECT_EQ(p.server->peer()->spiffe_id, "spiffe://example.org/client");
}

}  // namespace
}  // namespace portcullis::mtls
