// The authority's CA against the real verifiers: every SVID it signs goes through
// mtls::verify_x509_svid with the bundle it publishes, every JWT-SVID through validate_jwt_svid
// with its SPIFFE bundle JSON. Keys and CSRs are real BoringSSL objects; the data dir is real.
#include "attest/authority/certificate_authority.h"

#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <thread>

#include "mtls/attested_claims.h"
#include "mtls/cert_minter.h"
#include "mtls/jwt_svid.h"
#include "mtls/x509_svid_verifier.h"
#include "tests/unit/mtls/jwt_test_util.h"

namespace portcullis::attest::authority {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;
using mtls::testing::ec_key;
using mtls::testing::rsa_key;

constexpr const char* kTd = "example.org";

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/portcullis-ca-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// make_csr signs a PKCS#10 request with `key`, asking for a subject and a SAN the CA must ignore.
std::string make_csr(EVP_PKEY* key, const EVP_MD* md = EVP_sha256()) {
  bssl::UniquePtr<X509_REQ> req(X509_REQ_new());
  bssl::UniquePtr<X509_NAME> name(X509_NAME_new());
  X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8, reinterpret_cast<const uint8_t*>("admin"), -1, -1, 0);
  bssl::UniquePtr<STACK_OF(X509_EXTENSION)> exts(sk_X509_EXTENSION_new_null());
  bssl::UniquePtr<GENERAL_NAMES> sans(sk_GENERAL_NAME_new_null());
  bssl::UniquePtr<GENERAL_NAME> gn(GENERAL_NAME_new());
  bssl::UniquePtr<ASN1_IA5STRING> uri(ASN1_IA5STRING_new());
  ASN1_STRING_set(uri.get(), "spiffe://evil.org/admin", -1);
  GENERAL_NAME_set0_value(gn.get(), GEN_URI, uri.release());
  sk_GENERAL_NAME_push(sans.get(), gn.release());
  sk_X509_EXTENSION_push(exts.get(), X509V3_EXT_i2d(NID_subject_alt_name, 0, sans.get()));
  EXPECT_TRUE(X509_REQ_set_version(req.get(), 0) && X509_REQ_set_subject_name(req.get(), name.get()) &&
              X509_REQ_set_pubkey(req.get(), key) && X509_REQ_add_extensions(req.get(), exts.get()) &&
              X509_REQ_sign(req.get(), key, md));
  uint8_t* der = nullptr;
  int len = i2d_X509_REQ(req.get(), &der);
  EXPECT_GT(len, 0);
  bssl::UniquePtr<uint8_t> owned(der);
  return std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
}

bssl::UniquePtr<X509> parse_der(const std::string& der) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(der.data());
  return bssl::UniquePtr<X509>(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

class CaTest : public ::testing::Test {
 protected:
  CaOptions options() {
    CaOptions o;
    o.trust_domain = kTd;
    o.data_dir = dir_.path() + "/ca";
    o.stats = &stats_;
    return o;
  }

  std::unique_ptr<CertificateAuthority> open(CaOptions o) {
    auto ca = CertificateAuthority::open(std::move(o));
    EXPECT_TRUE(ca.ok()) << ca.error().message;
    return ca.ok() ? std::move(ca.value()) : nullptr;
  }

  X509SvidRequest request(EVP_PKEY* key, std::string id = "spiffe://example.org/web") {
    X509SvidRequest r;
    r.csr_der = make_csr(key);
    r.spiffe_id = std::move(id);
    return r;
  }

  // verify checks `chain_der` as an X.509-SVID against `bundle` at `now`; "ok" or the rejection.
  std::string verify(const std::vector<std::string>& chain_der, const BundleSnapshot& bundle,
                     mtls::PeerIdentity* out = nullptr, Clock::time_point now = Clock::now()) {
    std::vector<bssl::UniquePtr<X509>> owned;
    std::vector<X509*> chain;
    for (const auto& der : chain_der) {
      owned.push_back(parse_der(der));
      chain.push_back(owned.back().get());
    }
    mtls::TrustBundleSet set;
    set.add(bundle.trust_bundle);
    mtls::PeerIdentity id;
    mtls::SvidVerifyError err;
    mtls::VerifyOptions vo;
    vo.now = now;
    if (!mtls::verify_x509_svid(chain, set, vo, &id, &err)) return std::string(mtls::svid_rejection_name(err.reason)) + ": " + err.message;
    if (out) *out = id;
    return "ok";
  }

  uint64_t counter(const std::string& leaf) { return stats_.counter(StatScope{"authority", "", ""}, "ca." + leaf).value(); }

  TempDir dir_;
  StatsStore stats_;
};

TEST_F(CaTest, SignsACsrIntoAnSvidThatVerifiesAgainstItsBundle) {
  auto ca = open(options());
  ASSERT_TRUE(ca);
  auto key = ec_key(NID_X9_62_prime256v1);
  X509SvidRequest r = request(key.get());
  r.dns_names = {"web.example.org"};
  r.ttl = 1h;
  r.claims = {"unix:sha256:ab12", "node:attestation:join_token", "entry:id:e1", "node:id:spiffe://example.org/node/join_token/abc"};
  const Clock::time_point before = Clock::now();
  auto svid = ca->sign_x509_svid(r);
  ASSERT_TRUE(svid.ok()) << svid.error().message;
  ASSERT_EQ(svid->chain_der.size(), 1u);  // self-signed root: the bundle holds it, the chain does not
  mtls::PeerIdentity id;
  ASSERT_EQ(verify(svid->chain_der, *ca->bundle(), &id), "ok");
  EXPECT_EQ(id.spiffe_id, "spiffe://example.org/web");
  EXPECT_EQ(id.serial, svid->serial_hex);
  EXPECT_EQ(id.attested_claims, (std::vector<std::string>{"entry:id:e1", "node:attestation:join_token",
                                                          "node:id:spiffe://example.org/node/join_token/abc", "unix:sha256:ab12"}));

  auto leaf = parse_der(svid->chain_der[0]);
  auto claims = mtls::attested_claims_of(leaf.get());
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(*claims, id.attested_claims);
  // The CSR's subject and SAN are ignored; the authority's names are the only ones.
  EXPECT_EQ(mtls::subject_alt_names(leaf.get(), GEN_URI), std::vector<std::string>{"spiffe://example.org/web"});
  EXPECT_EQ(mtls::subject_alt_names(leaf.get(), GEN_DNS), std::vector<std::string>{"web.example.org"});
  EXPECT_EQ(X509_NAME_entry_count(X509_get_subject_name(leaf.get())), 0);
  uint32_t flags = X509_get_extension_flags(leaf.get());
  EXPECT_FALSE(flags & EXFLAG_CA);
  EXPECT_EQ(X509_get_key_usage(leaf.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  EXPECT_EQ(X509_get_extended_key_usage(leaf.get()) & (XKU_SSL_SERVER | XKU_SSL_CLIENT), static_cast<uint32_t>(XKU_SSL_SERVER | XKU_SSL_CLIENT));
  int ku_at = X509_get_ext_by_NID(leaf.get(), NID_key_usage, -1);
  ASSERT_GE(ku_at, 0);
  EXPECT_EQ(X509_EXTENSION_get_critical(X509_get_ext(leaf.get(), ku_at)), 1);  // keyUsage must be critical
  int at = X509_get_ext_by_OBJ(leaf.get(), mtls::attested_claims_object(), -1);
  ASSERT_GE(at, 0);
  EXPECT_EQ(X509_EXTENSION_get_critical(X509_get_ext(leaf.get(), at)), 0);
  EXPECT_GE(svid->serial_hex.size(), 31u);  // 128 random bits, top bit clear
  // Backdated, and valid for the requested hour.
  EXPECT_LE(svid->not_after, before + 1h + 2s);
  EXPECT_GE(svid->not_after, before + 1h - 2s);
  EXPECT_EQ(verify(svid->chain_der, *ca->bundle(), nullptr, before - 50s), "ok");
  EXPECT_EQ(counter("x509_svids_signed"), 1u);
}

TEST_F(CaTest, AcceptsP384AndRsa2048KeysAndGivesRsaKeyEncipherment) {
  auto ca = open(options());
  ASSERT_TRUE(ca);
  auto p384 = ec_key(NID_secp384r1);
  auto svid = ca->sign_x509_svid(request(p384.get()));
  ASSERT_TRUE(svid.ok()) << svid.error().message;
  EXPECT_EQ(verify(svid->chain_der, *ca->bundle()), "ok");
  auto rsa = rsa_key(2048);
  svid = ca->sign_x509_svid(request(rsa.get()));
  ASSERT_TRUE(svid.ok()) << svid.error().message;
  EXPECT_EQ(verify(svid->chain_der, *ca->bundle()), "ok");
  EXPECT_EQ(X509_get_key_usage(parse_der(svid->chain_der[0]).get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
}

TEST_F(CaTest, RefusesTamperedMalformedAndWeakCsrsWithCountedReasons) {
  auto ca = open(options());
  ASSERT_TRUE(ca);
  auto key = ec_key(NID_X9_62_prime256v1);
  X509SvidRequest r = request(key.get());
  // Change one byte of the requested subject ("admin" -> "bdmin"): the signature no longer covers it.
  size_t pos = r.csr_der.find("admin");
  ASSERT_NE(pos, std::string::npos);
  r.csr_der[pos] = 'b';
  auto svid = ca->sign_x509_svid(r);
  ASSERT_FALSE(svid.ok());
  EXPECT_EQ(svid.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(svid.error().message, "CSR rejected (bad_signature): the request's signature does not verify with its own key");
  EXPECT_EQ(counter("csr_rejected_bad_signature"), 1u);

  r = request(key.get());
  r.csr_der += '\0';
  EXPECT_FALSE(ca->sign_x509_svid(r).ok());
  r.csr_der = "not a csr";
  EXPECT_FALSE(ca->sign_x509_svid(r).ok());
  EXPECT_EQ(counter("csr_rejected_malformed"), 2u);

  auto weak = rsa_key(1024);
  svid = ca->sign_x509_svid(request(weak.get()));
  ASSERT_FALSE(svid.ok());
  EXPECT_EQ(svid.error().message, "CSR rejected (weak_key): RSA key of 1024 bits (want 2048 to 8192)");
  EXPECT_EQ(counter("csr_rejected_weak_key"), 1u);

  auto p224 = ec_key(NID_secp224r1);
  svid = ca->sign_x509_svid(request(p224.get()));
  ASSERT_FALSE(svid.ok());
  EXPECT_EQ(svid.error().message, "CSR rejected (unsupported_key): EC curve secp224r1 (want P-256 or P-384)");
  EXPECT_EQ(counter("csr_rejected_unsupported_key"), 1u);

  r = request(key.get());
  r.csr_der = std::string(20000, 'x');
  EXPECT_FALSE(ca->sign_x509_svid(r).ok());
  EXPECT_EQ(counter("csr_rejected_too_large"), 1u);
  EXPECT_EQ(counter("x509_svids_signed"), 0u);
}

TEST_F(CaTest, RefusesIdsOutsideTheTrustDomainBadNamesAndClaims) {
  auto ca = open(options());
  ASSERT_TRUE(ca);
  auto key = ec_key(NID_X9_62_prime256v1);
  for (auto mutate : std::vector<std::function<void(X509SvidRequest&)>>{
           [](X509SvidRequest& r) { r.spiffe_id = "spiffe://other.org/web"; },
           [](X509SvidRequest& r) { r.spiffe_id = "spiffe://example.org"; },
           [](X509SvidRequest& r) { r.spiffe_id = "https://example.org/web"; },
           [](X509SvidRequest& r) { r.dns_names = {"bad name"}; },
           [](X509SvidRequest& r) { r.claims = {"no-colons"}; },
           [](X509SvidRequest& r) { r.ttl = 0s; }}) {
    X509SvidRequest r = request(key.get());
    mutate(r);
    auto svid = ca->sign_x509_svid(r);
    EXPECT_FALSE(svid.ok());
    if (!svid.ok()) {
      EXPECT_EQ(svid.error().code, ErrorCode::kInvalidArgument) << svid.error().message;
    }
  }
  EXPECT_EQ(counter("invalid_requests"), 6u);
}

TEST_F(CaTest, PersistsTheRootWithPrivateModesAndReloadsIt) {
  std::string root_der, kid;
  uint64_t sequence = 0;
  std::vector<std::string> old_chain;
  {
    auto ca = open(options());
    ASSERT_TRUE(ca);
    root_der = ca->signing_ca_der();
    sequence = ca->bundle()->sequence_number;
    kid = ca->bundle()->jwt_authorities.at(0).key_id;
    auto key = ec_key(NID_X9_62_prime256v1);
    old_chain = ca->sign_x509_svid(request(key.get()))->chain_der;
  }
  const std::string d = options().data_dir;
  EXPECT_EQ(mode_of(d), 0700u);
  EXPECT_EQ(mode_of(d + "/ca-1.key"), 0600u);
  EXPECT_EQ(mode_of(d + "/jwt-1.key"), 0600u);
  EXPECT_EQ(mode_of(d + "/ca-state.json"), 0600u);
  EXPECT_EQ(sequence, 1u);
  auto ca = open(options());
  ASSERT_TRUE(ca);
  EXPECT_EQ(ca->signing_ca_der(), root_der);
  EXPECT_EQ(ca->bundle()->sequence_number, sequence);  // nothing changed, so no new sequence
  EXPECT_EQ(ca->bundle()->jwt_authorities.at(0).key_id, kid);
  EXPECT_EQ(verify(old_chain, *ca->bundle()), "ok");
  for (const auto& entry : std::filesystem::directory_iterator(d)) {
    EXPECT_EQ(entry.path().string().find(".tmp-"), std::string::npos) << entry.path();
  }
}

TEST_F(CaTest, RefusesAKeyFileOthersCanReadAndADataDirOthersCanWrite) {
  ASSERT_TRUE(open(options()));
  const std::string d = options().data_dir;
  ASSERT_EQ(::chmod((d + "/ca-1.key").c_str(), 0644), 0);
  auto ca = CertificateAuthority::open(options());
  ASSERT_FALSE(ca.ok());
  EXPECT_EQ(ca.error().code, ErrorCode::kPermissionDenied);
  EXPECT_NE(ca.error().message.find("ca-1.key is accessible by group or others"), std::string::npos) << ca.error().message;
  ASSERT_EQ(::chmod((d + "/ca-1.key").c_str(), 0600), 0);
  ASSERT_EQ(::chmod(d.c_str(), 0777), 0);
  ca = CertificateAuthority::open(options());
  ASSERT_FALSE(ca.ok());
  EXPECT_NE(ca.error().message.find("writable by group or others"), std::string::npos) << ca.error().message;
}

TEST_F(CaTest, RefusesADataDirOfAnotherTrustDomain) {
  ASSERT_TRUE(open(options()));
  CaOptions o = options();
  o.trust_domain = "other.org";
  auto ca = CertificateAuthority::open(o);
  ASSERT_FALSE(ca.ok());
  EXPECT_NE(ca.error().message.find("belongs to trust domain 'example.org'"), std::string::npos) << ca.error().message;
}

TEST_F(CaTest, SignsWithAnUpstreamCaAndTrustsItsRoot) {
  mtls::CertSpec root_spec;
  root_spec.common_name = "corp root";
  root_spec.is_ca = true;
  root_spec.key_usage = mtls::kKuKeyCertSign | mtls::kKuCrlSign;
  root_spec.server_auth = root_spec.client_auth = false;
  root_spec.not_after = Clock::now() + 48h;
  auto root = mtls::mint_certificate(root_spec, nullptr);
  ASSERT_TRUE(root.ok());
  mtls::CertSpec inter_spec = root_spec;
  inter_spec.common_name = "corp issuing";
  inter_spec.not_after = Clock::now() + 24h;
  auto inter = mtls::mint_certificate(inter_spec, &*root);
  ASSERT_TRUE(inter.ok());
  write_file(dir_.path() + "/chain.pem", inter->cert_pem() + root->cert_pem());
  write_file(dir_.path() + "/key.pem", inter->key_pem());
  CaOptions o = options();
  o.upstream = {{dir_.path() + "/chain.pem", ""}, {dir_.path() + "/key.pem", ""}};
  auto ca = open(o);
  ASSERT_TRUE(ca);
  auto bundle = ca->bundle();
  ASSERT_EQ(bundle->x509_authorities_der.size(), 1u);
  bssl::UniquePtr<X509> anchor = parse_der(bundle->x509_authorities_der[0]);
  EXPECT_EQ(X509_cmp(anchor.get(), root->cert.get()), 0);
  auto key = ec_key(NID_X9_62_prime256v1);
  X509SvidRequest r = request(key.get());
  r.ttl = 100h;
  auto svid = ca->sign_x509_svid(r);
  ASSERT_TRUE(svid.ok()) << svid.error().message;
  ASSERT_EQ(svid->chain_der.size(), 2u);  // leaf + the upstream issuing CA
  EXPECT_EQ(X509_cmp(parse_der(svid->chain_der[1]).get(), inter->cert.get()), 0);
  EXPECT_EQ(verify(svid->chain_der, *bundle), "ok");
  // Capped at the upstream chain's earliest expiry.
  EXPECT_LE(svid->not_after, inter_spec.not_after);
  EXPECT_GE(svid->not_after, inter_spec.not_after - 2s);
  // JWT keys are still ours, in data_dir.
  EXPECT_EQ(bundle->jwt_authorities.size(), 1u);
  EXPECT_EQ(mode_of(o.data_dir + "/jwt-1.key"), 0600u);

  // A key that does not belong to the chain's first certificate is refused.
  write_file(dir_.path() + "/key.pem", root->key_pem());
  auto bad = CertificateAuthority::open(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("does not match the first certificate"), std::string::npos) << bad.error().message;
}

TEST_F(CaTest, RotationAddsTheNextCaBeforeItSignsAndKeepsTheOldOneTrusted) {
  auto ca = open(options());
  ASSERT_TRUE(ca);
  auto key = ec_key(NID_X9_62_prime256v1);
  const std::string old_root = ca->signing_ca_der();
  auto from_old = ca->sign_x509_svid(request(key.get()));
  ASSERT_TRUE(from_old.ok());
  const uint64_t seq0 = ca->bundle()->sequence_number;
  auto before_prepare = ca->bundle();

  ASSERT_TRUE(ca->prepare_rotation().ok());
  auto overlap = ca->bundle();
  EXPECT_EQ(overlap->sequence_number, seq0 + 1);
  EXPECT_EQ(overlap->x509_authorities_der.size(), 2u);
  EXPECT_EQ(overlap->jwt_authorities.size(), 2u);
  EXPECT_TRUE(ca->has_prepared_rotation());
  EXPECT_EQ(ca->signing_ca_der(), old_root);  // the new CA signs nothing yet
  auto during = ca->sign_x509_svid(request(key.get()));
  ASSERT_TRUE(during.ok());
  EXPECT_EQ(X509_check_issued(parse_der(old_root).get(), parse_der(during->chain_der[0]).get()), X509_V_OK);
  EXPECT_EQ(ca->prepare_rotation().error().code, ErrorCode::kFailedPrecondition);

  ASSERT_TRUE(ca->activate_prepared().ok());
  EXPECT_NE(ca->signing_ca_der(), old_root);
  EXPECT_FALSE(ca->has_prepared_rotation());
  EXPECT_EQ(ca->bundle()->sequence_number, seq0 + 1);  // same authorities: no new sequence
  auto from_new = ca->sign_x509_svid(request(key.get()));
  ASSERT_TRUE(from_new.ok());
  // A peer still holding the bundle from before activation accepts the new CA's SVIDs...
  EXPECT_EQ(verify(from_new->chain_der, *overlap), "ok");
  // ...and the old CA's SVIDs stay valid against the current bundle.
  EXPECT_EQ(verify(from_old->chain_der, *ca->bundle()), "ok");
  // A peer with the bundle from before the rotation was prepared does not: that is why the overlap exists.
  EXPECT_EQ(verify(from_new->chain_der, *before_prepare).substr(0, 10), "unknown_ca");
  EXPECT_EQ(ca->activate_prepared().error().code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(counter("rotations_prepared"), 1u);
  EXPECT_EQ(counter("rotations_activated"), 1u);

  // The rotation survives a restart.
  const std::string new_root = ca->signing_ca_der();
  ca.reset();
  ca = open(options());
  ASSERT_TRUE(ca);
  EXPECT_EQ(ca->signing_ca_der(), new_root);
  EXPECT_EQ(ca->bundle()->sequence_number, seq0 + 1);
  EXPECT_EQ(ca->bundle()->x509_authorities_der.size(), 2u);
}

TEST_F(CaTest, ARetiredCaLeavesTheBundleWhenItExpires) {
  Clock::time_point fake = Clock::now();
  CaOptions o = options();
  o.ca_ttl = 10h;
  o.now = [&] { return fake; };
  auto ca = open(o);
  ASSERT_TRUE(ca);
  fake += 5h;
  ASSERT_TRUE(ca->prepare_rotation().ok());
  ASSERT_TRUE(ca->activate_prepared().ok());
  const uint64_t seq = ca->bundle()->sequence_number;
  auto pruned = ca->prune_expired();
  ASSERT_TRUE(pruned.ok());
  EXPECT_FALSE(*pruned);
  fake += 5h + 1s;  // generation 1 expired, generation 2 has 5 h left
  pruned = ca->prune_expired();
  ASSERT_TRUE(pruned.ok()) << pruned.error().message;
  EXPECT_TRUE(*pruned);
  EXPECT_EQ(ca->bundle()->sequence_number, seq + 1);
  EXPECT_EQ(ca->bundle()->x509_authorities_der.size(), 1u);
  EXPECT_EQ(ca->bundle()->jwt_authorities.size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(o.data_dir + "/ca-1.key"));
  EXPECT_TRUE(std::filesystem::exists(o.data_dir + "/ca-2.key"));
  auto key = ec_key(NID_X9_62_prime256v1);
  auto svid = ca->sign_x509_svid(request(key.get()));
  ASSERT_TRUE(svid.ok());
  EXPECT_EQ(verify(svid->chain_der, *ca->bundle(), nullptr, fake), "ok");
}

TEST_F(CaTest, TtlIsCappedAtTheCaExpiry) {
  CaOptions o = options();
  o.ca_ttl = 2h;
  auto ca = open(o);
  ASSERT_TRUE(ca);
  auto root = parse_der(ca->signing_ca_der());
  X509SvidRequest r;
  auto key = ec_key(NID_X9_62_prime256v1);
  r = request(key.get());
  r.ttl = 10h;
  auto svid = ca->sign_x509_svid(r);
  ASSERT_TRUE(svid.ok());
  auto leaf = parse_der(svid->chain_der[0]);
  int days = -1, secs = -1;
  ASSERT_TRUE(ASN1_TIME_diff(&days, &secs, X509_get0_notAfter(leaf.get()), X509_get0_notAfter(root.get())));
  EXPECT_EQ(days, 0);
  EXPECT_EQ(secs, 0);
  EXPECT_LE(svid->not_after, Clock::now() + 2h + 1s);

  auto token = ca->sign_jwt_svid("spiffe://example.org/web", {"db"}, 10h);
  ASSERT_TRUE(token.ok()) << token.error().message;
  auto bundle = mtls::TrustBundle::from_spiffe_json(kTd, ca->bundle()->spiffe_bundle_json);
  ASSERT_TRUE(bundle.ok());
  mtls::TrustBundleSet set;
  set.add(*bundle);
  mtls::JwtSvidClaims claims;
  mtls::JwtVerifyError err;
  ASSERT_TRUE(mtls::validate_jwt_svid(*token, "db", set, {}, &claims, &err)) << err.message;
  const auto exp = claims.claims["exp"].get<int64_t>();
  EXPECT_LE(exp, std::chrono::duration_cast<std::chrono::seconds>((Clock::now() + 2h + 1s).time_since_epoch()).count());
}

TEST_F(CaTest, JwtSvidsValidateAgainstTheBundleJsonAcrossRotation) {
  CaOptions o = options();
  o.jwt_key_id = "authority-1";
  auto ca = open(o);
  ASSERT_TRUE(ca);
  auto validate = [&](const std::string& token, const std::string& json) {
    auto bundle = mtls::TrustBundle::from_spiffe_json(kTd, json);
    EXPECT_TRUE(bundle.ok());
    mtls::TrustBundleSet set;
    set.add(*bundle);
    mtls::JwtSvidClaims claims;
    mtls::JwtVerifyError err;
    if (!mtls::validate_jwt_svid(token, "db", set, {}, &claims, &err)) return std::string(mtls::jwt_rejection_name(err.reason));
    return claims.spiffe_id + " kid=" + claims.key_id + " alg=" + claims.algorithm;
  };
  auto first = ca->sign_jwt_svid("spiffe://example.org/web", {"db"}, 5min);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(validate(*first, ca->bundle()->spiffe_bundle_json), "spiffe://example.org/web kid=authority-1 alg=ES256");
  auto json = nlohmann::json::parse(ca->bundle()->spiffe_bundle_json);
  EXPECT_EQ(json["spiffe_sequence"], 1);
  ASSERT_TRUE(ca->prepare_rotation().ok());
  const std::string overlap_json = ca->bundle()->spiffe_bundle_json;
  ASSERT_TRUE(ca->activate_prepared().ok());
  auto second = ca->sign_jwt_svid("spiffe://example.org/web", {"db"}, 5min);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(validate(*second, overlap_json).substr(0, 29), "spiffe://example.org/web kid=");
  EXPECT_EQ(validate(*second, overlap_json).find("authority-1"), std::string::npos);
  EXPECT_EQ(validate(*first, ca->bundle()->spiffe_bundle_json), "spiffe://example.org/web kid=authority-1 alg=ES256");
  EXPECT_FALSE(ca->sign_jwt_svid("spiffe://other.org/web", {"db"}, 5min).ok());
  EXPECT_FALSE(ca->sign_jwt_svid("spiffe://example.org/web", {}, 5min).ok());
  EXPECT_EQ(counter("jwt_svids_signed"), 2u);
}

TEST_F(CaTest, IssuesItsOwnServerCertificateWithAnInMemoryKey) {
  auto ca = open(options());
  ASSERT_TRUE(ca);
  auto cert = ca->issue_server_certificate({"authority.example.org", "localhost"}, 24h);
  ASSERT_TRUE(cert.ok()) << cert.error().message;
  EXPECT_EQ(cert->spiffe_id, "spiffe://example.org/portcullis/authority");
  mtls::PeerIdentity id;
  ASSERT_EQ(verify(cert->chain_der, *ca->bundle(), &id), "ok");
  EXPECT_EQ(id.spiffe_id, cert->spiffe_id);
  auto leaf = parse_der(cert->chain_der[0]);
  EXPECT_EQ(mtls::subject_alt_names(leaf.get(), GEN_DNS), (std::vector<std::string>{"authority.example.org", "localhost"}));
  auto certs = mtls::parse_pem_certificates(cert->certificate_chain_pem);
  ASSERT_TRUE(certs.ok());
  ASSERT_EQ(certs->size(), 1u);
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(cert->private_key_pem.data(), static_cast<int>(cert->private_key_pem.size())));
  bssl::UniquePtr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_TRUE(key);
  EXPECT_EQ(X509_check_private_key(leaf.get(), key.get()), 1);
  // Nothing but the CA's own files lands in data_dir.
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(options().data_dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 4u);  // ca-1.crt, ca-1.key, jwt-1.key, ca-state.json
  EXPECT_EQ(counter("server_certificates_issued"), 1u);
}

TEST_F(CaTest, SignsFromSeveralThreadsWhileRotating) {
  auto ca = open(options());
  ASSERT_TRUE(ca);
  std::vector<std::string> csrs;
  std::vector<bssl::UniquePtr<EVP_PKEY>> keys;
  for (int i = 0; i < 4; ++i) {
    keys.push_back(ec_key(NID_X9_62_prime256v1));
    csrs.push_back(make_csr(keys.back().get()));
  }
  std::atomic<int> failures{0};
  std::vector<std::vector<std::vector<std::string>>> chains(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        X509SvidRequest r;
        r.csr_der = csrs[t];
        r.spiffe_id = "spiffe://example.org/w" + std::to_string(t);
        auto svid = ca->sign_x509_svid(r);
        if (!svid.ok()) ++failures;
        else chains[t].push_back(svid->chain_der);
      }
    });
  }
  ASSERT_TRUE(ca->prepare_rotation().ok());
  ASSERT_TRUE(ca->activate_prepared().ok());
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  for (const auto& per_thread : chains) {
    for (const auto& chain : per_thread) EXPECT_EQ(verify(chain, *ca->bundle()), "ok");
  }
  EXPECT_EQ(counter("x509_svids_signed"), 100u);
}

}  // namespace
}  // namespace portcullis::attest::authority
