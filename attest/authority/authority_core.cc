// The node-facing half of the core: node attestation, workload SVIDs, JWT-SVIDs, revocation and
// the update feed. Admin operations are in authority_core_admin.cc.
#include "attest/authority/authority_core.h"

#include <spdlog/spdlog.h>

#include "attest/authority/authority_requests.h"
#include "mtls/spiffe_id.h"

namespace portcullis::attest::authority {
namespace {

int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

v1::X509Svid svid_proto(const SignedX509Svid& svid, std::string_view entry_id) {
  v1::X509Svid out;
  out.set_spiffe_id(svid.spiffe_id);
  for (const auto& der : svid.chain_der) out.add_cert_chain(der);
  out.set_serial(svid.serial_hex);
  out.set_expires_at(unix_seconds(svid.not_after));
  out.set_entry_id(std::string(entry_id));
  return out;
}

// The claims that name what the authority relied on for a workload SVID (the ABAC extension).
std::vector<std::string> workload_claims(std::string_view attestation, std::string_view node_id,
                                         const RegistrationEntry& entry, const std::vector<std::string>& selectors) {
  std::vector<std::string> claims{"node:attestation:" + std::string(attestation), "node:id:" + std::string(node_id),
                                  "entry:id:" + entry.id};
  for (const auto& s : selectors) {
    if (s.starts_with("unix:sha256:")) claims.push_back(s);
  }
  return claims;
}

}  // namespace

AuthorityStats AuthorityStats::create(StatsStore& store) {
  StatScope scope{"authority", "", ""};
  return AuthorityStats{PORTCULLIS_AUTHORITY_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
}

AuthorityCoreOptions AuthorityCoreOptions::from_config(const AuthorityConfig& config) {
  AuthorityCoreOptions out;
  out.trust_domain = config.trust_domain;
  out.default_x509_svid_ttl = config.default_x509_svid_ttl;
  out.default_jwt_svid_ttl = config.default_jwt_svid_ttl;
  out.node_svid_ttl = config.node_svid_ttl;
  out.join_token_attestor = config.node_attestors.join_token.has_value();
  out.limits = config.limits;
  return out;
}

std::string node_attestation_of(std::string_view node_id, std::string_view trust_domain) {
  auto id = mtls::SpiffeId::parse(node_id);
  if (!id.ok() || !id->member_of(trust_domain)) return "";
  std::string_view path = id->path();
  constexpr std::string_view kPrefix = "/node/";
  if (!path.starts_with(kPrefix)) return "";
  path.remove_prefix(kPrefix.size());
  size_t slash = path.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == path.size()) return "";
  return std::string(path.substr(0, slash));
}

AuthorityCore::AuthorityCore(AuthorityCoreOptions options, std::unique_ptr<CertificateAuthority> ca,
                             std::unique_ptr<AuthorityStore> store, StatsStore& stats, AuditLog* audit)
    : options_(std::move(options)),
      ca_(std::move(ca)),
      store_(std::move(store)),
      stats_(AuthorityStats::create(stats)),
      audit_(audit),
      feed_(UpdateFeed::create(options_.limits.max_watchers, stats_.watchers)) {
  published_bundle_sequence_ = ca_->bundle()->sequence_number;
}

int64_t AuthorityCore::now() const { return unix_seconds(options_.clock()); }

Status AuthorityCore::invalid(std::string message) const {
  stats_.requests_invalid.inc();
  return make_error(ErrorCode::kInvalidArgument, std::move(message));
}

void AuthorityCore::audit(std::string decision, std::string spiffe_id, std::string serial, std::string policy,
                          std::string reason) {
  if (!audit_) return;
  AuditRecord r;
  r.listener = "authority";
  r.decision = std::move(decision);
  r.peer_spiffe_id = std::move(spiffe_id);
  r.cert_serial = std::move(serial);
  r.policy = std::move(policy);
  r.reason = std::move(reason);
  audit_->record(std::move(r));
}

Result<SignedX509Svid> AuthorityCore::issue(const X509SvidRequest& request, const VerifiedCsr& csr,
                                            std::string_view entry_id, std::string_view node_id) {
  auto svid = ca_->sign_x509_svid(request, csr);
  if (!svid.ok()) {
    stats_.sign_failed.inc();
    return svid.error();
  }
  IssuedSvid record{svid->serial_hex, svid->spiffe_id, std::string(entry_id), std::string(node_id),
                    unix_seconds(svid->not_after)};
  // An SVID we cannot record could never be revoked by its node: do not hand it out.
  if (Status s = store_->record_issued(record); !s.ok()) {
    stats_.sign_failed.inc();
    return s.error();
  }
  // Checked again after recording: an eviction that raced this call either sees the record (and
  // revokes it) or is seen here (and the SVID is never handed out).
  if (store_->is_evicted(node_id)) {
    stats_.node_evicted_denied.inc();
    return make_error(ErrorCode::kPermissionDenied, "node " + std::string(node_id) + " was evicted");
  }
  return svid;
}

Result<v1::AttestNodeResponse> AuthorityCore::attest_node(const v1::AttestNodeRequest& request) {
  auto csr = check_request(request, options_.limits);
  if (!csr.ok()) {
    stats_.node_attest_invalid.inc();
    return invalid(csr.error().message).error();
  }
  if (!options_.join_token_attestor) {
    stats_.node_attest_denied.inc();
    return make_error(ErrorCode::kFailedPrecondition, "the join_token node attestor is not enabled");
  }
  auto token_id = store_->consume_join_token(request.join_token());
  if (!token_id.ok() && token_id.error().code == ErrorCode::kInvalidArgument) {
    stats_.node_attest_invalid.inc();  // not even shaped like a token
    return invalid("join_token: " + token_id.error().message).error();
  }
  if (!token_id.ok()) {
    stats_.node_attest_denied.inc();
    // Unknown, used or expired alike: a guesser learns nothing from the answer.
    audit("deny", "", "", "node_attestation", "join token refused: " + token_id.error().message);
    if (token_id.error().code == ErrorCode::kNotFound || token_id.error().code == ErrorCode::kPermissionDenied) {
      return make_error(ErrorCode::kPermissionDenied, "join token is unknown, expired or already used");
    }
    return token_id.error();
  }
  std::string node_id = "spiffe://" + options_.trust_domain + "/node/join_token/" + *token_id;
  if (store_->is_evicted(node_id)) {  // evicted ahead of use by its token id
    stats_.node_evicted_denied.inc();
    audit("deny", node_id, "", "node_attestation", "node was evicted");
    return make_error(ErrorCode::kPermissionDenied, "node " + node_id + " was evicted");
  }
  X509SvidRequest sign{
      {}, node_id, {}, options_.node_svid_ttl, {"node:attestation:" + std::string(kJoinTokenAttestation)}};
  auto svid = issue(sign, *csr, "", node_id);
  if (!svid.ok()) return svid.error();
  stats_.node_attested.inc();
  audit("node_attested", node_id, svid->serial_hex, "node_attestation", "join_token " + *token_id);
  spdlog::info("authority: node {} attested by join token", node_id);
  v1::AttestNodeResponse out;
  *out.mutable_svid() = svid_proto(*svid, "");
  *out.mutable_bundle() = bundle();
  return out;
}

Result<v1::RenewNodeResponse> AuthorityCore::renew_node(std::string_view node_id, const v1::RenewNodeRequest& request) {
  auto csr = check_request(request, options_.limits);
  if (!csr.ok()) return invalid(csr.error().message).error();
  auto attestation = node_check(node_id);
  if (!attestation.ok()) return attestation.error();
  X509SvidRequest sign{{}, std::string(node_id), {}, options_.node_svid_ttl, {"node:attestation:" + *attestation}};
  auto svid = issue(sign, *csr, "", node_id);
  if (!svid.ok()) return svid.error();
  stats_.node_renewed.inc();
  audit("node_renewed", std::string(node_id), svid->serial_hex, "node_attestation", *attestation);
  v1::RenewNodeResponse out;
  *out.mutable_svid() = svid_proto(*svid, "");
  return out;
}

Result<v1::WorkloadSvids> AuthorityCore::sign_for_workload(std::string_view node_id, std::string_view attestation,
                                                           const EntryMatcher& entries,
                                                           const v1::WorkloadCsrs& workload,
                                                           const std::vector<VerifiedCsr>& csrs) {
  std::vector<std::string> selectors = selector_strings(workload.selectors());
  auto matches = entries.match(node_id, selectors);
  v1::WorkloadSvids out;
  out.set_workload_key(workload.workload_key());
  out.set_matched_entries(static_cast<uint32_t>(matches.size()));
  if (matches.empty()) stats_.workloads_unmatched.inc();
  size_t n = std::min(matches.size(), csrs.size());
  for (size_t i = 0; i < n; ++i) {
    const RegistrationEntry& entry = *matches[i];
    std::chrono::seconds ttl = entry.x509_svid_ttl.count() > 0 ? entry.x509_svid_ttl : options_.default_x509_svid_ttl;
    X509SvidRequest sign{
        {}, entry.spiffe_id, entry.dns_names, ttl, workload_claims(attestation, node_id, entry, selectors)};
    auto svid = issue(sign, csrs[i], entry.id, node_id);
    if (!svid.ok()) return svid.error();
    stats_.workload_svids_issued.inc();
    audit("svid_issued", entry.spiffe_id, svid->serial_hex, entry.id, "workload on node " + std::string(node_id));
    *out.add_svids() = svid_proto(*svid, entry.id);
  }
  return out;
}

Result<v1::SignWorkloadSvidsResponse> AuthorityCore::sign_workload_svids(std::string_view node_id,
                                                                          const v1::SignWorkloadSvidsRequest& request) {
  auto csrs = check_request(request, options_.limits);
  if (!csrs.ok()) return invalid(csrs.error().message).error();
  auto attestation = node_check(node_id);
  if (!attestation.ok()) return attestation.error();
  auto entries = store_->matcher();  // one snapshot for the whole request
  v1::SignWorkloadSvidsResponse out;
  for (int i = 0; i < request.workloads_size(); ++i) {
    auto signed_svids =
        sign_for_workload(node_id, *attestation, *entries, request.workloads(i), (*csrs)[static_cast<size_t>(i)]);
    if (!signed_svids.ok()) return signed_svids.error();
    *out.add_workloads() = std::move(*signed_svids);
  }
  return out;
}

Result<v1::MintJwtSvidResponse> AuthorityCore::mint_jwt_svid(std::string_view node_id,
                                                             const v1::MintJwtSvidRequest& request) {
  if (Status s = check_request(request, options_.limits); !s.ok()) return invalid(s.error().message).error();
  if (auto node = node_check(node_id); !node.ok()) return node.error();
  auto entries = store_->matcher();
  auto matches = entries->match(node_id, selector_strings(request.selectors()));
  const RegistrationEntry* chosen = nullptr;
  for (const RegistrationEntry* e : matches) {
    if (request.spiffe_id().empty() || e->spiffe_id == request.spiffe_id()) {
      chosen = e;
      break;
    }
  }
  if (!chosen) {
    stats_.jwt_svid_denied.inc();
    return make_error(ErrorCode::kPermissionDenied,
                      request.spiffe_id().empty() ? "no registration entry matches these selectors on this node"
                                                  : "these selectors do not entitle " + request.spiffe_id() + " on this node");
  }
  std::chrono::seconds ttl = chosen->jwt_svid_ttl.count() > 0 ? chosen->jwt_svid_ttl : options_.default_jwt_svid_ttl;
  std::vector<std::string> audience(request.audience().begin(), request.audience().end());
  int64_t issued_at = now();
  auto token = ca_->sign_jwt_svid(chosen->spiffe_id, audience, ttl);
  if (!token.ok()) {
    stats_.sign_failed.inc();
    return token.error();
  }
  stats_.jwt_svids_minted.inc();
  audit("jwt_svid_issued", chosen->spiffe_id, "", chosen->id, "workload on node " + std::string(node_id));
  v1::MintJwtSvidResponse out;
  out.set_spiffe_id(chosen->spiffe_id);
  out.set_token(std::move(*token));
  out.set_expires_at(issued_at + ttl.count());
  return out;
}

Result<v1::RevokeSvidsResponse> AuthorityCore::revoke(std::string_view node_id, const v1::RevokeSvidsRequest& request) {
  if (Status s = check_request(request, options_.limits); !s.ok()) return invalid(s.error().message).error();
  if (auto node = node_check(node_id); !node.ok()) return node.error();
  std::vector<std::string> serials(request.serials().begin(), request.serials().end());
  std::sort(serials.begin(), serials.end());
  serials.erase(std::unique(serials.begin(), serials.end()), serials.end());
  auto issued = store_->issued_to_node(node_id, serials);
  if (!issued.ok()) return issued.error();
  if (size_t foreign = serials.size() - issued->size(); foreign > 0) {
    // Someone else's serial, or one we never issued: a node may only revoke its own.
    stats_.revoke_denied.inc(foreign);
    audit("deny", std::string(node_id), "", "revocation",
          std::to_string(foreign) + " serial(s) not issued to this node were not revoked");
  }
  int64_t revoked_at = now();
  std::vector<Revocation> revocations;
  for (const auto& svid : *issued) {
    revocations.push_back(Revocation{svid.serial, svid.spiffe_id, svid.expires_at, revoked_at, request.reason()});
  }
  auto added = publish_revocations(revocations);
  if (!added.ok()) return added.error();
  for (const auto& r : revocations) {
    audit("revoked", r.spiffe_id, r.serial, "revocation", "by node " + std::string(node_id) + ": " + r.reason);
  }
  v1::RevokeSvidsResponse out;
  out.set_revoked(static_cast<uint32_t>(*added));
  return out;
}

Result<std::string> AuthorityCore::node_check(std::string_view node_id) {
  std::string attestation = node_attestation_of(node_id, options_.trust_domain);
  if (attestation.empty()) return make_error(ErrorCode::kPermissionDenied, "not a node SPIFFE ID of this trust domain");
  if (store_->is_evicted(node_id)) {
    stats_.node_evicted_denied.inc();
    return make_error(ErrorCode::kPermissionDenied, "node " + std::string(node_id) + " was evicted");
  }
  return attestation;
}

Result<size_t> AuthorityCore::publish_revocations(const std::vector<Revocation>& revocations) {
  size_t added = 0;
  Status published = feed_->publish([&]() -> Result<std::optional<v1::AuthorityUpdate>> {
    if (revocations.empty()) return std::optional<v1::AuthorityUpdate>();
    auto n = store_->add_revocations(revocations);
    if (!n.ok()) return n.error();
    added = *n;
    if (added == 0) return std::optional<v1::AuthorityUpdate>();  // all known already: pushed before
    v1::AuthorityUpdate update;
    for (const auto& r : revocations) *update.add_revocations() = revocation_to_proto(r);
    stats_.updates_published.inc();
    return std::optional<v1::AuthorityUpdate>(std::move(update));
  });
  if (!published.ok()) return published.error();
  stats_.revocations.inc(added);
  return added;
}

Result<Subscription> AuthorityCore::watch(UpdateFeed::Callback callback) {
  return feed_->subscribe(
      [this]() -> Result<v1::AuthorityUpdate> {
        auto live = store_->live_revocations(now());
        if (!live.ok()) return live.error();
        v1::AuthorityUpdate full;
        *full.mutable_bundle() = bundle();
        for (const auto& r : *live) *full.add_revocations() = revocation_to_proto(r);
        full.set_full_revocation_set(true);
        return full;
      },
      std::move(callback));
}

bool AuthorityCore::node_allowed(const grpc::TlsPeer& peer) const {
  auto reject = [this](const char* why, const grpc::TlsPeer& p) {
    stats_.node_identity_rejected.inc();
    spdlog::debug("authority: peer {} (serial {}) is not an allowed node: {}", p.spiffe_id, p.serial, why);
    return false;
  };
  if (peer.trust_domain != options_.trust_domain || node_attestation_of(peer.spiffe_id, options_.trust_domain).empty()) {
    return reject("not a node SPIFFE ID of this trust domain", peer);
  }
  if (store_->is_evicted(peer.spiffe_id)) {
    stats_.node_evicted_denied.inc();
    return reject("node evicted", peer);
  }
  auto issued = store_->issued_svid(peer.serial);
  if (!issued.ok() || !*issued) return reject("serial not issued by this authority", peer);
  const IssuedSvid& svid = **issued;
  if (svid.spiffe_id != peer.spiffe_id || !svid.entry_id.empty() || svid.node_id != peer.spiffe_id) {
    return reject("serial was not issued as this node's SVID", peer);
  }
  auto revoked = store_->is_revoked(peer.serial);
  if (!revoked.ok() || *revoked) return reject("revoked", peer);
  return true;
}

std::string AuthorityCore::embedded_node_id(std::string_view hostname) const {
  return "spiffe://" + options_.trust_domain + "/node/" + std::string(kEmbeddedAttestation) + "/" + std::string(hostname);
}

}  // namespace portcullis::attest::authority
