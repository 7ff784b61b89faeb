#include "attest/authority/certificate_authority.h"

#include <openssl/bytestring.h>

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

// State is what ca-state.json records, plus the generations it names, loaded.
struct CertificateAuthority::State {
  uint64_t sequence = 0;
  uint64_t next_id = 1;
  uint64_t active = 0;
  uint64_t prepared = 0;  // 0: none
  std::string bundle_fingerprint;
  std::vector<std::shared_ptr<const CaGeneration>> generations;
  std::string written_json;  // what ca-state.json holds: an unchanged state is not rewritten

  std::shared_ptr<const CaGeneration> find(uint64_t id) const {
    for (const auto& g : generations) {
      if (g->id == id) return g;
    }
    return nullptr;
  }
};

// Snapshot is what signing reads, lock-free.
struct CertificateAuthority::Snapshot {
  std::shared_ptr<const CaSigner> x509;
  std::shared_ptr<const mtls::JwtSigner> jwt;
  Clock::time_point jwt_not_after;
  std::shared_ptr<const BundleSnapshot> bundle;
};

namespace {

constexpr const char* kStateFile = "ca-state.json";
constexpr int kStateVersion = 1;

Error invalid(std::string message) { return make_error(ErrorCode::kInvalidArgument, std::move(message)); }

int64_t unix_seconds(Clock::time_point t) { return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count(); }

std::string spki_der(EVP_PKEY* key) {
  bssl::ScopedCBB cbb;
  if (!CBB_init(cbb.get(), 128) || !EVP_marshal_public_key(cbb.get(), key)) return "";
  return std::string(reinterpret_cast<const char*>(CBB_data(cbb.get())), CBB_len(cbb.get()));
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
    auto up = load_upstream_ca(*ca->options_.upstream);
    if (!up.ok()) return up.error();
    ca->upstream_ = std::move(up.value());
  }
  std::lock_guard lock(ca->mutex_);
  if (Status s = ca->load_locked(); !s.ok()) return s.error();
  return ca;
}

Result<std::shared_ptr<const CaGeneration>> CertificateAuthority::new_generation(uint64_t id, std::string jwt_key_id) const {
  NewGeneration spec;
  spec.id = id;
  spec.trust_domain = options_.trust_domain;
  spec.with_root = upstream_ == nullptr;
  spec.jwt_key_id = std::move(jwt_key_id);
  spec.now = now();
  spec.not_after = spec.now + options_.ca_ttl;
  if (upstream_) spec.not_after = std::min(spec.not_after, upstream_->not_after);
  spec.backdate = options_.backdate;
  return create_generation(options_.data_dir, spec);
}

// parse_state reads ca-state.json without trusting it: every member is type-checked (nlohmann's
// accessors would throw, or assert on a missing member of a const object).
Status CertificateAuthority::parse_state(std::string_view text, State* out) const {
  const std::string where = path(kStateFile);
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto u64 = [&](const nlohmann::json& obj, const char* key, uint64_t* v) {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_number_unsigned()) return false;
    *v = it->get<uint64_t>();
    return true;
  };
  auto str = [&](const nlohmann::json& obj, const char* key, std::string* v) {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_string()) return false;
    *v = it->get<std::string>();
    return true;
  };
  uint64_t version = 0;
  std::string td;
  if (!j.is_object() || !u64(j, "version", &version) || version != kStateVersion || !str(j, "trust_domain", &td) ||
      !u64(j, "sequence_number", &out->sequence) || !u64(j, "next_id", &out->next_id) || !u64(j, "active", &out->active) ||
      !u64(j, "prepared", &out->prepared) || !str(j, "bundle_fingerprint", &out->bundle_fingerprint) ||
      !j.contains("generations") || !j["generations"].is_array()) {
    return invalid(where + ": not a version " + std::to_string(kStateVersion) + " CA state file");
  }
  if (td != options_.trust_domain) {
    return invalid(where + ": data_dir belongs to trust domain '" + td + "', not '" + options_.trust_domain + "'");
  }
  for (const auto& r : j["generations"]) {
    uint64_t id = 0, not_after = 0;
    std::string kid;
    if (!r.is_object() || !u64(r, "id", &id) || !str(r, "jwt_key_id", &kid) || !u64(r, "not_after", &not_after) ||
        id >= out->next_id || out->find(id)) {
      return invalid(where + ": malformed generation record");
    }
    auto g = load_generation(options_.data_dir, id, kid, static_cast<int64_t>(not_after));
    if (!g.ok()) return g.error();
    out->generations.push_back(std::move(g.value()));
  }
  return {};
}

Status CertificateAuthority::load_locked() {
  State state;
  if (::access(path(kStateFile).c_str(), F_OK) == 0) {
    auto text = read_small_file(path(kStateFile));
    if (!text.ok()) return text.error();
    if (Status s = parse_state(*text, &state); !s.ok()) return s;
  }
  if (Status s = ensure_usable_active(state); !s.ok()) return s;
  return commit_locked(std::move(state));
}

// ensure_usable_active gives `state` an active generation that can sign: on first start, after
// the active one expired while the authority was down, or when upstream mode was turned off.
Status CertificateAuthority::ensure_usable_active(State& state) {
  if (upstream_ && upstream_->not_after <= now()) {
    return make_error(ErrorCode::kFailedPrecondition, "the upstream CA certificate chain has expired");
  }
  auto active = state.find(state.active);
  auto usable = [&](const std::shared_ptr<const CaGeneration>& g) {
    return g && g->not_after > now() && (upstream_ || g->own_ca);
  };
  if (usable(active)) return {};
  if (auto prepared = state.find(state.prepared); usable(prepared)) {
    state.active = state.prepared;
    state.prepared = 0;
  } else {
    auto g = new_generation(state.next_id, state.generations.empty() ? options_.jwt_key_id : "");
    if (!g.ok()) return g.error();
    state.active = state.next_id++;
    state.generations.push_back(std::move(g.value()));
  }
  if (active) spdlog::warn("authority CA generation {} cannot sign any more; generation {} signs now, without overlap", active->id, state.active);
  return {};
}

// build_bundle derives the published bundle from `state` (sequence_number not yet set) and the
// fingerprint that decides whether the sequence moves.
Result<std::pair<std::shared_ptr<BundleSnapshot>, std::string>> CertificateAuthority::build_bundle(const State& state) const {
  auto bundle = std::make_shared<BundleSnapshot>();
  bundle->trust_domain = options_.trust_domain;
  auto add_anchor = [&](const CaSigner& s) {
    auto& ders = bundle->x509_authorities_der;
    if (std::find(ders.begin(), ders.end(), s.anchor_der) == ders.end()) ders.push_back(s.anchor_der);
  };
  if (upstream_) add_anchor(*upstream_);
  for (const auto& g : state.generations) {
    if (g->own_ca) add_anchor(*g->own_ca);
    auto authority = g->jwt->authority();
    if (!authority.ok()) return authority.error();
    bundle->jwt_authorities.push_back({authority->key_id, spki_der(authority->public_key.get())});
  }
  std::string fingerprint_input;
  for (const auto& der : bundle->x509_authorities_der) fingerprint_input += sha256_hex(der);
  for (const auto& j : bundle->jwt_authorities) fingerprint_input += j.key_id + "=" + sha256_hex(j.public_key_der);
  return std::pair{std::move(bundle), sha256_hex(fingerprint_input)};
}

// finish_bundle stamps the sequence and builds the parsed bundle and its SPIFFE JSON.
Status CertificateAuthority::finish_bundle(const State& state, BundleSnapshot& bundle) const {
  bundle.sequence_number = state.sequence;
  std::vector<bssl::UniquePtr<X509>> anchors;
  for (const auto& der : bundle.x509_authorities_der) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(der.data());
    anchors.emplace_back(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    if (!anchors.back()) return make_error(ErrorCode::kInternal, "re-parsing a bundle authority: " + mtls::drain_ssl_errors());
  }
  std::vector<mtls::JwtAuthority> jwt_authorities;
  for (const auto& g : state.generations) {
    auto authority = g->jwt->authority();
    if (!authority.ok()) return authority.error();
    jwt_authorities.push_back(std::move(authority.value()));
  }
  bundle.trust_bundle = std::make_shared<const mtls::TrustBundle>(options_.trust_domain, std::move(anchors), state.sequence,
                                                                  std::move(jwt_authorities));
  auto json = mtls::to_spiffe_bundle_json(*bundle.trust_bundle);
  if (!json.ok()) return json.error();
  bundle.spiffe_bundle_json = std::move(json.value());
  return {};
}

std::string CertificateAuthority::state_json(const State& state) const {
  nlohmann::json j{{"version", kStateVersion},        {"trust_domain", options_.trust_domain},
                   {"sequence_number", state.sequence}, {"next_id", state.next_id},
                   {"active", state.active},            {"prepared", state.prepared},
                   {"bundle_fingerprint", state.bundle_fingerprint}, {"generations", nlohmann::json::array()}};
  for (const auto& g : state.generations) {
    j["generations"].push_back({{"id", g->id}, {"jwt_key_id", g->jwt->key_id()}, {"not_after", unix_seconds(g->not_after)}});
  }
  return j.dump(2) + "\n";
}

// commit_locked persists `next` and publishes it; on failure nothing changes (memory or disk).
Status CertificateAuthority::commit_locked(State next) {
  // Retired generations leave the bundle when they expire; active and prepared ones never do.
  const Clock::time_point t = now();
  std::vector<uint64_t> dropped;
  std::erase_if(next.generations, [&](const std::shared_ptr<const CaGeneration>& g) {
    bool drop = g->id != next.active && g->id != next.prepared && g->not_after <= t;
    if (drop) dropped.push_back(g->id);
    return drop;
  });
  auto built = build_bundle(next);
  if (!built.ok()) return built.error();
  auto& [bundle, fingerprint] = built.value();
  if (fingerprint != next.bundle_fingerprint) {
    ++next.sequence;
    next.bundle_fingerprint = fingerprint;
  }
  if (Status s = finish_bundle(next, *bundle); !s.ok()) return s;
  // The state file's rename is the commit point: new key files are already on disk, and a crash
  // before it leaves the previous state (orphan files are overwritten by the next attempt).
  next.written_json = state_json(next);
  if (!persisted_ || next.written_json != persisted_->written_json) {
    if (Status s = write_file_atomic(path(kStateFile), next.written_json, 0600); !s.ok()) return s;
  }
  for (uint64_t id : dropped) remove_generation_files(options_.data_dir, id);
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
  auto g = new_generation(next.next_id, "");
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
  auto der = certificate_der(snapshot_.load()->x509->ca.cert.get());
  return der.ok() ? *der : "";
}

Result<std::pair<std::string, std::string>> CertificateAuthority::mint_leaf(
    const CaSigner& signer, const std::string& spiffe_id, const std::vector<std::string>& dns_names, std::chrono::seconds ttl,
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
  auto der = certificate_der(leaf->cert.get());
  if (!der.ok()) return der.error();
  // mint_certificate stores the time truncated to seconds; report what the certificate says.
  *out_not_after = asn1_time_point(X509_get0_notAfter(leaf->cert.get()));
  return std::pair<std::string, std::string>{std::move(der.value()), serial_hex(leaf->cert.get())};
}

Result<SignedX509Svid> CertificateAuthority::sign_x509_svid(const X509SvidRequest& request) const {
  return sign_x509(request, nullptr);
}

Result<SignedX509Svid> CertificateAuthority::sign_x509_svid(const X509SvidRequest& request,
                                                            const VerifiedCsr& csr) const {
  return sign_x509(request, &csr);
}

Result<SignedX509Svid> CertificateAuthority::sign_x509(const X509SvidRequest& request,
                                                       const VerifiedCsr* verified) const {
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
  std::optional<VerifiedCsr> own;
  if (!verified) {
    CsrError csr_error;
    own = VerifiedCsr::verify(request.csr_der, options_.csr_limits, &csr_error);
    if (!own) {
      stats_.count_csr_rejection(csr_error.reason);
      return invalid(csr_error.message);
    }
    verified = &*own;
  }
  auto snap = snapshot_.load();
  SignedX509Svid out;
  auto leaf = mint_leaf(*snap->x509, id->str(), request.dns_names, request.ttl, claims_der, verified->public_key(),
                        &out.not_after);
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

}  // namespace portcullis::attest::authority
