#include "attest/authority/certificate_authority.h"

#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/mem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "attest/authority/ca_files.h"
#include "common/digest.h"
#include "mtls/attested_claims.h"
#include "mtls/cert_minter.h"
#include "mtls/jwt_svid.h"
#include "mtls/spiffe_bundle_json.h"
#include "mtls/spiffe_id.h"
#include "mtls/ssl_error.h"

namespace portcullis::attest::authority {

using Clock = std::chrono::system_clock;

// Signer is a CA certificate with its key, as it signs SVIDs.
struct CertificateAuthority::Signer {
  mtls::MintedCert ca;
  std::vector<std::string> intermediates_der;  // sent after the leaf: the upstream chain minus its root
  std::string anchor_der;                      // what peers must trust: the root
  Clock::time_point not_after;                 // the earliest expiry along the chain
};

// Generation is one CA key set: its own root (self-signed mode) and a JWT key. Immutable.
struct CertificateAuthority::Generation {
  uint64_t id = 0;
  std::shared_ptr<const Signer> own_ca;  // null for generations made in upstream mode
  std::shared_ptr<const mtls::JwtSigner> jwt;
  Clock::time_point not_after;
};

// State is what ca-state.json records, plus the generations it names, loaded.
struct CertificateAuthority::State {
  uint64_t sequence = 0;
  uint64_t next_id = 1;
  uint64_t active = 0;
  uint64_t prepared = 0;  // 0: none
  std::string bundle_fingerprint;
  std::vector<std::shared_ptr<const Generation>> generations;

  std::shared_ptr<const Generation> find(uint64_t id) const {
    for (const auto& g : generations) {
      if (g->id == id) return g;
    }
    return nullptr;
  }
};

// Snapshot is what signing reads, lock-free.
struct CertificateAuthority::Snapshot {
  std::shared_ptr<const Signer> x509;
  std::shared_ptr<const mtls::JwtSigner> jwt;
  Clock::time_point jwt_not_after;
  std::shared_ptr<const BundleSnapshot> bundle;
};

namespace {

constexpr const char* kStateFile = "ca-state.json";
constexpr int kStateVersion = 1;

Error invalid(std::string message) { return make_error(ErrorCode::kInvalidArgument, std::move(message)); }

int64_t unix_seconds(Clock::time_point t) { return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count(); }

Clock::time_point asn1_time_point(const ASN1_TIME* t) {
  int days = 0, seconds = 0;
  bssl::UniquePtr<ASN1_TIME> epoch(ASN1_TIME_set(nullptr, 0));
  ASN1_TIME_diff(&days, &seconds, epoch.get(), t);
  return Clock::time_point(std::chrono::seconds(static_cast<int64_t>(days) * 86400 + seconds));
}

Result<std::string> der_of(X509* cert) {
  uint8_t* der = nullptr;
  int len = i2d_X509(cert, &der);
  if (len <= 0) return make_error(ErrorCode::kInternal, "encoding a certificate: " + mtls::drain_ssl_errors());
  bssl::UniquePtr<uint8_t> owned(der);
  return std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
}

std::string serial_hex(X509* cert) {
  bssl::UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr));
  bssl::UniquePtr<char> hex(bn ? BN_bn2hex(bn.get()) : nullptr);
  std::string out = hex ? hex.get() : "";
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string spki_der(EVP_PKEY* key) {
  bssl::ScopedCBB cbb;
  if (!CBB_init(cbb.get(), 128) || !EVP_marshal_public_key(cbb.get(), key)) return "";
  return std::string(reinterpret_cast<const char*>(CBB_data(cbb.get())), CBB_len(cbb.get()));
}

std::string random_hex(size_t bytes) {
  std::vector<uint8_t> b(bytes);
  RAND_bytes(b.data(), b.size());
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (uint8_t x : b) out += {kHex[x >> 4], kHex[x & 15]};
  return out;
}

bool is_ca_cert(X509* cert) {
  uint32_t flags = X509_get_extension_flags(cert);
  if (!(flags & EXFLAG_CA) || (flags & EXFLAG_INVALID)) return false;
  return !(flags & EXFLAG_KUSAGE) || (X509_get_key_usage(cert) & KU_KEY_CERT_SIGN);
}

// dns_name_problem: RFC 1035 host names (letters, digits, '-', dot-separated), or a wildcard as
// the whole first label.
std::string dns_name_problem(std::string_view name) {
  if (name.empty() || name.size() > 253) return "must be 1 to 253 bytes";
  std::string_view rest = name.substr(0, 2) == "*." ? name.substr(2) : name;
  size_t start = 0;
  while (start <= rest.size()) {
    size_t dot = rest.find('.', start);
    std::string_view label = rest.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63) return "has an empty or over-long label";
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return "may only hold letters, digits, '-' and '.'";
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return "";
}

Result<std::shared_ptr<const CertificateAuthority::Signer>> load_upstream(
    const std::pair<mtls::DataSource, mtls::DataSource>& upstream);

}  // namespace

void CaStats::count_csr_rejection(CsrRejection reason) const {
  switch (reason) {
    case CsrRejection::kTooLarge: csr_rejected_too_large.inc(); break;
    case CsrRejection::kMalformed: csr_rejected_malformed.inc(); break;
    case CsrRejection::kUnsupportedKey: csr_rejected_unsupported_key.inc(); break;
    case CsrRejection::kWeakKey: csr_rejected_weak_key.inc(); break;
    case CsrRejection::kBadSignature: csr_rejected_bad_signature.inc(); break;
  }
}

CertificateAuthority::CertificateAuthority(CaOptions options, std::unique_ptr<StatsStore> own_stats)
    : options_(std::move(options)),
      own_stats_(std::move(own_stats)),
      stats_(CaStats::create(options_.stats ? *options_.stats : *own_stats_)) {}

CertificateAuthority::~CertificateAuthority() = default;

std::string CertificateAuthority::path(std::string_view name) const { return options_.data_dir + "/" + std::string(name); }

Result<std::unique_ptr<CertificateAuthority>> CertificateAuthority::open(CaOptions options) {
  if (Status s = mtls::validate_trust_domain_name(options.trust_domain); !s.ok()) {
    return invalid("trust_domain '" + options.trust_domain + "': " + s.error().message);
  }
  if (options.ca_ttl.count() <= 0) return invalid("ca_ttl must be positive");
  if (options.backdate.count() < 0) return invalid("backdate must not be negative");
  if (Status s = ensure_private_dir(options.data_dir); !s.ok()) return s.error();
  std::unique_ptr<StatsStore> own = options.stats ? nullptr : std::make_unique<StatsStore>();
  std::unique_ptr<CertificateAuthority> ca(new CertificateAuthority(std::move(options), std::move(own)));
  if (ca->options_.upstream) {
    auto up = load_upstream(*ca->options_.upstream);
    if (!up.ok()) return up.error();
    ca->upstream_ = std::move(up.value());
  }
  std::lock_guard lock(ca->mutex_);
  if (Status s = ca->load_locked(); !s.ok()) return s.error();
  return ca;
}

Result<std::shared_ptr<const CertificateAuthority::Generation>> CertificateAuthority::create_generation(
    uint64_t id, std::string jwt_key_id) const {
  auto g = std::make_shared<Generation>();
  g->id = id;
  const Clock::time_point t = now();
  g->not_after = t + options_.ca_ttl;
  const std::string n = std::to_string(id);
  if (upstream_) {
    g->not_after = std::min(g->not_after, upstream_->not_after);
  } else {
    mtls::CertSpec spec;
    // A distinct name per generation: during an overlap two roots are trusted at once, and path
    // building matches issuers by name (and key identifier) before it checks signatures.
    spec.common_name = "Portcullis CA " + options_.trust_domain + " " + n + "-" + random_hex(4);
    spec.uri_sans = {"spiffe://" + options_.trust_domain};
    spec.is_ca = true;
    spec.key_usage = mtls::kKuKeyCertSign | mtls::kKuCrlSign;
    spec.server_auth = spec.client_auth = false;
    spec.not_before = t - options_.backdate;
    spec.not_after = g->not_after;
    spec.key_identifiers = true;
    auto root = mtls::mint_certificate(spec, nullptr);
    if (!root.ok()) return root.error();
    auto key_pem = private_key_pem(root->key.get());
    if (!key_pem.ok()) return key_pem.error();
    auto anchor = der_of(root->cert.get());
    if (!anchor.ok()) return anchor.error();
    if (Status s = write_file_atomic(path("ca-" + n + ".key"), *key_pem, 0600); !s.ok()) return s.error();
    if (Status s = write_file_atomic(path("ca-" + n + ".crt"), root->cert_pem(), 0644); !s.ok()) return s.error();
    auto signer = std::make_shared<Signer>();
    signer->ca = std::move(root.value());
    signer->anchor_der = std::move(anchor.value());
    signer->not_after = g->not_after;
    g->own_ca = std::move(signer);
  }
  auto jwt_key = mtls::generate_p256_key();
  if (!jwt_key.ok()) return jwt_key.error();
  auto jwt_pem = private_key_pem(jwt_key->get());
  if (!jwt_pem.ok()) return jwt_pem.error();
  if (Status s = write_file_atomic(path("jwt-" + n + ".key"), *jwt_pem, 0600); !s.ok()) return s.error();
  auto jwt = mtls::JwtSigner::create(std::move(jwt_key.value()), std::move(jwt_key_id));
  if (!jwt.ok()) return jwt.error();
  g->jwt = std::move(jwt.value());
  return std::shared_ptr<const Generation>(std::move(g));
}

Result<std::shared_ptr<const CertificateAuthority::Generation>> CertificateAuthority::load_generation(
    uint64_t id, const std::string& jwt_key_id, int64_t not_after) const {
  auto g = std::make_shared<Generation>();
  g->id = id;
  g->not_after = Clock::time_point(std::chrono::seconds(not_after));
  const std::string n = std::to_string(id);
  if (::access(path("ca-" + n + ".crt").c_str(), F_OK) == 0) {
    auto pem = read_small_file(path("ca-" + n + ".crt"));
    if (!pem.ok()) return pem.error();
    auto certs = mtls::parse_pem_certificates(*pem);
    if (!certs.ok() || certs->size() != 1) return invalid(path("ca-" + n + ".crt") + ": not exactly one PEM certificate");
    auto key = read_private_key_file(path("ca-" + n + ".key"));
    if (!key.ok()) return key.error();
    bssl::UniquePtr<EVP_PKEY> pub(X509_get_pubkey((*certs)[0].get()));
    if (!pub || EVP_PKEY_cmp(pub.get(), key->get()) != 1) {
      mtls::drain_ssl_errors();
      return invalid(path("ca-" + n + ".key") + " does not match " + path("ca-" + n + ".crt"));
    }
    auto signer = std::make_shared<Signer>();
    signer->ca.cert = std::move((*certs)[0]);
    signer->ca.key = std::move(key.value());
    auto anchor = der_of(signer->ca.cert.get());
    if (!anchor.ok()) return anchor.error();
    signer->anchor_der = std::move(anchor.value());
    signer->not_after = asn1_time_point(X509_get0_notAfter(signer->ca.cert.get()));
    g->not_after = signer->not_after;
    g->own_ca = std::move(signer);
  }
  auto jwt_key = read_private_key_file(path("jwt-" + n + ".key"));
  if (!jwt_key.ok()) return jwt_key.error();
  auto jwt = mtls::JwtSigner::create(std::move(jwt_key.value()), jwt_key_id);
  if (!jwt.ok()) return make_error(jwt.error().code, path("jwt-" + n + ".key") + ": " + jwt.error().message);
  g->jwt = std::move(jwt.value());
  return std::shared_ptr<const Generation>(std::move(g));
}

Status CertificateAuthority::load_locked() {
  State state;
  auto text = read_small_file(path(kStateFile));
  if (text.ok()) {
    auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || j.value("version", 0) != kStateVersion || !j["generations"].is_array()) {
      return invalid(path(kStateFile) + ": not a version " + std::to_string(kStateVersion) + " CA state file");
    }
    if (j.value("trust_domain", "") != options_.trust_domain) {
      return invalid(path(kStateFile) + ": data_dir belongs to trust domain '" + j.value("trust_domain", "") +
                     "', not '" + options_.trust_domain + "'");
    }
    state.sequence = j.value("sequence_number", uint64_t{0});
    state.next_id = j.value("next_id", uint64_t{1});
    state.active = j.value("active", uint64_t{0});
    state.prepared = j.value("prepared", uint64_t{0});
    state.bundle_fingerprint = j.value("bundle_fingerprint", "");
    for (const auto& r : j["generations"]) {
      if (!r.is_object() || !r["id"].is_number_unsigned() || !r["jwt_key_id"].is_string() || !r["not_after"].is_number_integer()) {
        return invalid(path(kStateFile) + ": malformed generation record");
      }
      auto g = load_generation(r["id"].get<uint64_t>(), r["jwt_key_id"].get<std::string>(), r["not_after"].get<int64_t>());
      if (!g.ok()) return g.error();
      state.generations.push_back(std::move(g.value()));
    }
  } else if (text.error().code != ErrorCode::kIo || ::access(path(kStateFile).c_str(), F_OK) == 0) {
    return text.error();
  }
  if (Status s = ensure_usable_active(state); !s.ok()) return s;
  return commit_locked(std::move(state));
}

// ensure_usable_active gives `state` an active generation that can sign: on first start, after
// the active one expired while the authority was down, or when upstream mode was turned off.
Status CertificateAuthority::ensure_usable_active(State& state) {
  auto active = state.find(state.active);
  auto usable = [&](const std::shared_ptr<const Generation>& g) {
    return g && g->not_after > now() && (upstream_ || g->own_ca);
  };
  if (usable(active)) return {};
  if (auto prepared = state.find(state.prepared); usable(prepared)) {
    state.active = state.prepared;
    state.prepared = 0;
  } else {
    auto g = create_generation(state.next_id, state.generations.empty() ? options_.jwt_key_id : "");
    if (!g.ok()) return g.error();
    state.active = state.next_id++;
    state.generations.push_back(std::move(g.value()));
  }
  if (active) spdlog::warn("authority CA generation {} cannot sign any more; generation {} signs now, without overlap", active->id, state.active);
  return {};
}

Status CertificateAuthority::commit_locked(State next) {
  // Retired generations leave the bundle when they expire; active and prepared ones never do.
  const Clock::time_point t = now();
  std::vector<uint64_t> dropped;
  std::erase_if(next.generations, [&](const std::shared_ptr<const Generation>& g) {
    bool drop = g->id != next.active && g->id != next.prepared && g->not_after <= t;
    if (drop) dropped.push_back(g->id);
    return drop;
  });
  auto bundle = std::make_shared<BundleSnapshot>();
  bundle->trust_domain = options_.trust_domain;
  std::vector<bssl::UniquePtr<X509>> anchors;
  std::vector<mtls::JwtAuthority> jwt_authorities;
  auto add_anchor = [&](const Signer& s) {
    if (std::find(bundle->x509_authorities_der.begin(), bundle->x509_authorities_der.end(), s.anchor_der) !=
        bundle->x509_authorities_der.end()) {
      return;
    }
    bundle->x509_authorities_der.push_back(s.anchor_der);
    const uint8_t* p = reinterpret_cast<const uint8_t*>(s.anchor_der.data());
    anchors.emplace_back(d2i_X509(nullptr, &p, static_cast<long>(s.anchor_der.size())));
  };
  if (upstream_) add_anchor(*upstream_);
  std::string fingerprint_input;
  for (const auto& g : next.generations) {
    if (g->own_ca) add_anchor(*g->own_ca);
    auto authority = g->jwt->authority();
    if (!authority.ok()) return authority.error();
    bundle->jwt_authorities.push_back({authority->key_id, spki_der(authority->public_key.get())});
    jwt_authorities.push_back(std::move(authority.value()));
  }
  for (const auto& der : bundle->x509_authorities_der) fingerprint_input += sha256_hex(der);
  for (const auto& j : bundle->jwt_authorities) fingerprint_input += j.key_id + "=" + sha256_hex(j.public_key_der);
  const std::string fingerprint = sha256_hex(fingerprint_input);
  if (fingerprint != next.bundle_fingerprint) {
    ++next.sequence;
    next.bundle_fingerprint = fingerprint;
  }
  bundle->sequence_number = next.sequence;
  bundle->trust_bundle = std::make_shared<const mtls::TrustBundle>(options_.trust_domain, std::move(anchors), next.sequence,
                                                                   std::move(jwt_authorities));
  auto json = mtls::to_spiffe_bundle_json(*bundle->trust_bundle);
  if (!json.ok()) return json.error();
  bundle->spiffe_bundle_json = std::move(json.value());

  nlohmann::json j{{"version", kStateVersion},       {"trust_domain", options_.trust_domain}, {"sequence_number", next.sequence},
                   {"next_id", next.next_id},         {"active", next.active},                 {"prepared", next.prepared},
                   {"bundle_fingerprint", fingerprint}, {"generations", nlohmann::json::array()}};
  for (const auto& g : next.generations) {
    j["generations"].push_back({{"id", g->id}, {"jwt_key_id", g->jwt->key_id()}, {"not_after", unix_seconds(g->not_after)}});
  }
  // The state file's rename is the commit point: new key files are already on disk, and a crash
  // before this line leaves the previous state (orphan files are overwritten by the next attempt).
  if (Status s = write_file_atomic(path(kStateFile), j.dump(2) + "\n", 0600); !s.ok()) return s;
  for (uint64_t id : dropped) {
    for (const char* f : {"ca-%.crt", "ca-%.key", "jwt-%.key"}) {
      std::string name(f);
      name.replace(name.find('%'), 1, std::to_string(id));
      ::unlink(path(name).c_str());
    }
  }
  auto active = next.find(next.active);
  auto snap = std::make_shared<Snapshot>();
  snap->x509 = upstream_ ? upstream_ : active->own_ca;
  snap->jwt = active->jwt;
  snap->jwt_not_after = active->not_after;
  snap->bundle = std::move(bundle);
  stats_.bundle_sequence.set(static_cast<int64_t>(next.sequence));
  stats_.signing_ca_not_after.set(unix_seconds(snap->x509->not_after));
  persisted_ = std::make_unique<State>(std::move(next));
  snapshot_.store(std::move(snap));
  return {};
}

Status CertificateAuthority::prepare_rotation() {
  std::lock_guard lock(mutex_);
  if (persisted_->prepared != 0) {
    return make_error(ErrorCode::kFailedPrecondition, "CA generation " + std::to_string(persisted_->prepared) + " is already prepared");
  }
  State next = *persisted_;
  auto g = create_generation(next.next_id, "");
  if (!g.ok()) return g.error();
  next.prepared = next.next_id++;
  next.generations.push_back(std::move(g.value()));
  if (Status s = commit_locked(std::move(next)); !s.ok()) return s;
  stats_.rotations_prepared.inc();
  spdlog::info("authority CA generation {} prepared; bundle sequence {}", persisted_->prepared, persisted_->sequence);
  return {};
}

Status CertificateAuthority::activate_prepared() {
  std::lock_guard lock(mutex_);
  if (persisted_->prepared == 0) return make_error(ErrorCode::kFailedPrecondition, "no prepared CA generation to activate");
  State next = *persisted_;
  next.active = next.prepared;
  next.prepared = 0;
  if (Status s = commit_locked(std::move(next)); !s.ok()) return s;
  stats_.rotations_activated.inc();
  spdlog::info("authority CA generation {} now signs", persisted_->active);
  return {};
}

Result<bool> CertificateAuthority::prune_expired() {
  std::lock_guard lock(mutex_);
  State next = *persisted_;
  const uint64_t before = next.sequence;
  if (Status s = ensure_usable_active(next); !s.ok()) return s.error();
  if (Status s = commit_locked(std::move(next)); !s.ok()) return s.error();
  return persisted_->sequence != before;
}

bool CertificateAuthority::has_prepared_rotation() const {
  std::lock_guard lock(mutex_);
  return persisted_->prepared != 0;
}

std::shared_ptr<const BundleSnapshot> CertificateAuthority::bundle() const { return snapshot_.load()->bundle; }

std::string CertificateAuthority::signing_ca_der() const {
  auto der = der_of(snapshot_.load()->x509->ca.cert.get());
  return der.ok() ? *der : "";
}

Result<std::pair<std::string, std::string>> CertificateAuthority::mint_leaf(
    const Signer& signer, const std::string& spiffe_id, const std::vector<std::string>& dns_names, std::chrono::seconds ttl,
    const std::string& claims_der, EVP_PKEY* subject_key, Clock::time_point* out_not_after) const {
  const Clock::time_point t = now();
  Clock::time_point not_after = std::min(t + ttl, signer.not_after);
  if (not_after <= t) return make_error(ErrorCode::kFailedPrecondition, "the signing CA has expired");
  mtls::CertSpec spec;
  spec.uri_sans = {spiffe_id};
  spec.dns_sans = dns_names;
  // keyEncipherment only means something for RSA (TLS 1.2 RSA key exchange).
  spec.key_usage = mtls::kKuDigitalSignature;
  if (EVP_PKEY_id(subject_key) == EVP_PKEY_RSA) spec.key_usage |= mtls::kKuKeyEncipherment;
  spec.not_before = t - options_.backdate;
  spec.not_after = not_after;
  spec.key_identifiers = true;
  if (!claims_der.empty()) spec.extra_extensions.push_back({mtls::kAttestedClaimsOid, false, claims_der});
  auto leaf = mtls::mint_certificate(spec, &signer.ca, subject_key);
  if (!leaf.ok()) {
    stats_.sign_failures.inc();
    return leaf.error();
  }
  auto der = der_of(leaf->cert.get());
  if (!der.ok()) return der.error();
  // mint_certificate stores the time truncated to seconds; report what the certificate says.
  *out_not_after = asn1_time_point(X509_get0_notAfter(leaf->cert.get()));
  return std::pair<std::string, std::string>{std::move(der.value()), serial_hex(leaf->cert.get())};
}

Result<SignedX509Svid> CertificateAuthority::sign_x509_svid(const X509SvidRequest& request) const {
  auto refuse = [&](std::string message) {
    stats_.invalid_requests.inc();
    return invalid(std::move(message));
  };
  auto id = mtls::SpiffeId::parse(request.spiffe_id);
  if (!id.ok()) return refuse("spiffe_id: " + id.error().message);
  if (!id->member_of(options_.trust_domain) || id->is_trust_domain_id()) {
    return refuse("spiffe_id " + id->str() + " is not a workload ID in trust domain " + options_.trust_domain);
  }
  for (const auto& name : request.dns_names) {
    if (auto p = dns_name_problem(name); !p.empty()) return refuse("dns name '" + name + "' " + p);
  }
  if (request.ttl.count() <= 0) return refuse("ttl must be positive");
  std::string claims_der;
  if (!request.claims.empty()) {
    auto c = mtls::encode_attested_claims(request.claims);
    if (!c.ok()) return refuse(c.error().message);
    claims_der = std::move(c.value());
  }
  CsrError csr_error;
  bssl::UniquePtr<EVP_PKEY> key = csr_public_key(request.csr_der, options_.csr_limits, &csr_error);
  if (!key) {
    stats_.count_csr_rejection(csr_error.reason);
    return invalid(csr_error.message);
  }
  auto snap = snapshot_.load();
  SignedX509Svid out;
  auto leaf = mint_leaf(*snap->x509, id->str(), request.dns_names, request.ttl, claims_der, key.get(), &out.not_after);
  if (!leaf.ok()) return leaf.error();
  out.spiffe_id = id->str();
  out.chain_der.push_back(std::move(leaf->first));
  out.chain_der.insert(out.chain_der.end(), snap->x509->intermediates_der.begin(), snap->x509->intermediates_der.end());
  out.serial_hex = std::move(leaf->second);
  stats_.x509_svids_signed.inc();
  return out;
}

Result<std::string> CertificateAuthority::sign_jwt_svid(std::string_view spiffe_id, const std::vector<std::string>& audience,
                                                        std::chrono::seconds ttl) const {
  auto id = mtls::SpiffeId::parse(spiffe_id);
  if (!id.ok() || !id->member_of(options_.trust_domain) || id->is_trust_domain_id()) {
    stats_.invalid_requests.inc();
    return invalid("spiffe_id '" + std::string(spiffe_id) + "' is not a workload ID in trust domain " + options_.trust_domain);
  }
  auto snap = snapshot_.load();
  const Clock::time_point t = now();
  auto left = std::chrono::duration_cast<std::chrono::seconds>(snap->jwt_not_after - t);
  if (left.count() <= 0) return make_error(ErrorCode::kFailedPrecondition, "the JWT signing key has expired");
  auto token = snap->jwt->mint(*id, audience, std::min(ttl, left), t);
  if (!token.ok()) {
    stats_.invalid_requests.inc();
    return token.error();
  }
  stats_.jwt_svids_signed.inc();
  return token;
}

Result<ServerCertificate> CertificateAuthority::issue_server_certificate(const std::vector<std::string>& dns_names,
                                                                         std::chrono::seconds ttl) const {
  for (const auto& name : dns_names) {
    if (auto p = dns_name_problem(name); !p.empty()) return invalid("dns name '" + name + "' " + p);
  }
  if (ttl.count() <= 0) return invalid("ttl must be positive");
  auto key = mtls::generate_p256_key();
  if (!key.ok()) return key.error();
  auto snap = snapshot_.load();
  ServerCertificate out;
  out.spiffe_id = "spiffe://" + options_.trust_domain + std::string(kAuthorityServerPath);
  auto leaf = mint_leaf(*snap->x509, out.spiffe_id, dns_names, ttl, "", key->get(), &out.not_after);
  if (!leaf.ok()) return leaf.error();
  out.chain_der.push_back(std::move(leaf->first));
  out.chain_der.insert(out.chain_der.end(), snap->x509->intermediates_der.begin(), snap->x509->intermediates_der.end());
  for (const auto& der : out.chain_der) out.certificate_chain_pem += mtls::der_to_pem("CERTIFICATE", der);
  auto pem = private_key_pem(key->get());
  if (!pem.ok()) return pem.error();
  out.private_key_pem = std::move(pem.value());
  stats_.server_certificates_issued.inc();
  return out;
}

namespace {

// load_upstream reads {certificate_chain, private_key}: the chain's first certificate is the CA
// we sign with (its key must be the given one), each certificate is signed by the next, and the
// last is the root peers trust.
Result<std::shared_ptr<const CertificateAuthority::Signer>> load_upstream(
    const std::pair<mtls::DataSource, mtls::DataSource>& upstream) {
  auto read = [](const mtls::DataSource& ds) { return ds.is_file() ? read_small_file(ds.filename) : Result<std::string>(ds.inline_string); };
  const std::string where = "upstream certificate_chain " + upstream.first.describe();
  auto chain_pem = read(upstream.first);
  if (!chain_pem.ok()) return chain_pem.error();
  auto key_pem = read(upstream.second);
  if (!key_pem.ok()) return key_pem.error();
  auto certs = mtls::parse_pem_certificates(*chain_pem);
  if (!certs.ok()) return invalid(where + ": " + certs.error().message);
  if (certs->empty()) return invalid(where + ": no PEM certificate");
  auto key = parse_private_key_pem(*key_pem, "upstream private_key " + upstream.second.describe());
  if (!key.ok()) return key.error();
  auto s = std::make_shared<CertificateAuthority::Signer>();
  s->not_after = Clock::time_point::max();
  for (size_t i = 0; i < certs->size(); ++i) {
    X509* c = (*certs)[i].get();
    if (!is_ca_cert(c)) return invalid(where + ": certificate " + std::to_string(i) + " is not a CA with keyCertSign");
    X509* issuer = i + 1 < certs->size() ? (*certs)[i + 1].get() : c;
    if (i + 1 < certs->size() || X509_check_issued(c, c) == X509_V_OK) {
      bssl::UniquePtr<EVP_PKEY> issuer_key(X509_get_pubkey(issuer));
      if (!issuer_key || X509_verify(c, issuer_key.get()) != 1) {
        mtls::drain_ssl_errors();
        return invalid(where + ": certificate " + std::to_string(i) + " is not signed by the next one");
      }
    }
    s->not_after = std::min(s->not_after, asn1_time_point(X509_get0_notAfter(c)));
    auto der = der_of(c);
    if (!der.ok()) return der.error();
    if (i + 1 < certs->size()) s->intermediates_der.push_back(std::move(der.value()));
    else s->anchor_der = std::move(der.value());
  }
  bssl::UniquePtr<EVP_PKEY> pub(X509_get_pubkey((*certs)[0].get()));
  if (!pub || EVP_PKEY_cmp(pub.get(), key->get()) != 1) {
    mtls::drain_ssl_errors();
    return invalid("upstream private_key " + upstream.second.describe() + " does not match the first certificate of " + where);
  }
  s->ca.cert = std::move((*certs)[0]);
  s->ca.key = std::move(key.value());
  return std::shared_ptr<const CertificateAuthority::Signer>(std::move(s));
}

}  // namespace

}  // namespace portcullis::attest::authority
