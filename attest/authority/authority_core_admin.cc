// The operator-facing half of the core (entries, join tokens, the bundle) and what the authority
// process itself needs (its server SVID, bundle pushes after a CA rotation, pruning).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "attest/authority/authority_core.h"
#include "attest/authority/authority_requests.h"
#include "attest/authority/entries_file.h"

#include <openssl/x509.h>

namespace portcullis::attest::authority {
namespace {

using TimePoint = std::chrono::system_clock::time_point;

bool to_time_point(const ASN1_TIME* t, TimePoint* out) {
  int days = 0, seconds = 0;
  bssl::UniquePtr<ASN1_TIME> epoch(ASN1_TIME_set(nullptr, 0));
  if (!epoch || !ASN1_TIME_diff(&days, &seconds, epoch.get(), t)) return false;
  *out = TimePoint(std::chrono::seconds(static_cast<int64_t>(days) * 86400 + seconds));
  return true;
}

// ca_life reads a CA certificate's validity window.
Result<std::pair<TimePoint, TimePoint>> ca_life(const std::string& der) {
  const auto* p = reinterpret_cast<const uint8_t*>(der.data());
  bssl::UniquePtr<X509> cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  TimePoint from, to;
  if (!cert || !to_time_point(X509_get0_notBefore(cert.get()), &from) ||
      !to_time_point(X509_get0_notAfter(cert.get()), &to)) {
    return make_error(ErrorCode::kInternal, "cannot read the signing CA's validity");
  }
  return std::pair{from, to};
}

}  // namespace

Result<v1::RegistrationEntry> AuthorityCore::create_entry(const v1::RegistrationEntry& entry) {
  if (Status s = check_entry(entry, options_.limits); !s.ok()) return invalid(s.error().message).error();
  auto created = store_->create_entry(entry_from_proto(entry));
  if (!created.ok()) return created.error();
  audit("entry_created", created->spiffe_id, "", created->id, "registration entry created");
  return entry_to_proto(*created);
}

Result<v1::RegistrationEntry> AuthorityCore::update_entry(const v1::RegistrationEntry& entry) {
  if (Status s = check_entry(entry, options_.limits); !s.ok()) return invalid(s.error().message).error();
  if (entry.id().empty()) return invalid("id: required to update an entry").error();
  auto updated = store_->update_entry(entry_from_proto(entry));
  if (!updated.ok()) return updated.error();
  audit("entry_updated", updated->spiffe_id, "", updated->id,
        "registration entry updated to revision " + std::to_string(updated->revision));
  return entry_to_proto(*updated);
}

Status AuthorityCore::delete_entry(std::string_view id) {
  if (id.empty() || id.size() > options_.limits.max_id_bytes) return invalid("id: must be 1 to max_id_bytes bytes");
  if (Status s = store_->delete_entry(id); !s.ok()) return s;
  // SVIDs issued from it stay valid until they expire or their node revokes them, as in SPIRE:
  // deleting an entry stops new issuance, it is not a revocation.
  audit("entry_deleted", "", "", std::string(id), "registration entry deleted");
  return {};
}

Result<v1::RegistrationEntry> AuthorityCore::get_entry(std::string_view id) const {
  if (id.empty() || id.size() > options_.limits.max_id_bytes) return invalid("id: must be 1 to max_id_bytes bytes").error();
  auto entry = store_->get_entry(id);
  if (!entry.ok()) return entry.error();
  return entry_to_proto(*entry);
}

v1::ListEntriesResponse AuthorityCore::list_entries() const {
  v1::ListEntriesResponse out;
  for (const auto& e : *store_->entries()) *out.add_entries() = entry_to_proto(e);
  return out;
}

Result<v1::GenerateJoinTokenResponse> AuthorityCore::generate_join_token(int64_t ttl_seconds) {
  if (ttl_seconds < 0 || ttl_seconds > options_.limits.max_join_token_ttl.count()) {
    return invalid("ttl_seconds: must be between 1 and " + std::to_string(options_.limits.max_join_token_ttl.count()) +
                   " (limits.max_join_token_ttl), or 0 for the default")
        .error();
  }
  auto ttl = ttl_seconds == 0 ? options_.default_join_token_ttl : std::chrono::seconds(ttl_seconds);
  auto token = store_->create_join_token(ttl);
  if (!token.ok()) return token.error();
  stats_.join_tokens_created.inc();
  // The token is a secret: only its id is logged.
  audit("join_token_created", "spiffe://" + options_.trust_domain + "/node/join_token/" + token->token_id, "",
        "node_attestation", "expires at " + std::to_string(token->expires_at));
  v1::GenerateJoinTokenResponse out;
  out.set_token(token->token);
  out.set_token_id(token->token_id);
  out.set_expires_at(token->expires_at);
  return out;
}

v1::Bundle AuthorityCore::bundle() const {
  auto snapshot = ca_->bundle();
  v1::Bundle out;
  out.set_trust_domain(snapshot->trust_domain);
  out.set_sequence_number(snapshot->sequence_number);
  for (const auto& der : snapshot->x509_authorities_der) out.add_x509_authorities(der);
  out.set_spiffe_bundle_json(snapshot->spiffe_bundle_json);
  return out;
}

Result<uint32_t> AuthorityCore::evict_node(std::string_view node_id, std::string_view reason) {
  if (node_id.size() > options_.limits.max_id_bytes || node_attestation_of(node_id, options_.trust_domain).empty()) {
    return invalid("node_id: '" + std::string(node_id.substr(0, 200)) + "' is not a node SPIFFE ID of trust domain " +
                   options_.trust_domain + " (spiffe://" + options_.trust_domain + "/node/<attestation>/<id>)")
        .error();
  }
  if (reason.size() > options_.limits.max_id_bytes) return invalid("reason: longer than max_id_bytes").error();
  // Evicted first, then the serials read: from this point the node is refused and issue() refuses
  // anything it signs for it, so no SVID can slip between the read below and the eviction.
  if (Status s = store_->evict_node(node_id, reason); !s.ok()) return s.error();
  stats_.nodes_evicted.inc();
  audit("node_evicted", std::string(node_id), "", "eviction", std::string(reason));
  spdlog::warn("authority: node {} evicted: {}", node_id, reason);
  auto issued = store_->issued_to_node(node_id);
  if (!issued.ok()) return issued.error();
  int64_t revoked_at = now();
  std::vector<Revocation> revocations;
  for (const auto& svid : *issued) {
    if (svid.expires_at <= revoked_at) continue;  // expired: nothing left to revoke
    revocations.push_back(Revocation{svid.serial, svid.spiffe_id, svid.expires_at, revoked_at,
                                     "node evicted" + (reason.empty() ? std::string() : ": " + std::string(reason))});
  }
  // In batches of the store's per-call limit: a busy node may hold more serials than one write takes.
  size_t batch = std::max<size_t>(1, store_->options().max_revocations_per_call);
  size_t added = 0;
  for (size_t at = 0; at < revocations.size(); at += batch) {
    std::vector<Revocation> part(revocations.begin() + static_cast<std::ptrdiff_t>(at),
                                 revocations.begin() + static_cast<std::ptrdiff_t>(std::min(at + batch, revocations.size())));
    auto n = publish_revocations(part);
    if (!n.ok()) return n.error();
    added += *n;
  }
  for (const auto& r : revocations) {
    audit("revoked", r.spiffe_id, r.serial, "revocation", "node " + std::string(node_id) + " evicted");
  }
  return static_cast<uint32_t>(added);
}

Result<SeedResult> AuthorityCore::seed_entries_file(const std::string& path) {
  EntryLimits limits = store_->options().entry_limits;
  auto entries = load_entries_file(path, limits, options_.trust_domain);
  if (!entries.ok()) return entries.error();
  auto seeded = store_->seed_entries(std::move(*entries));
  if (!seeded.ok()) return make_error(seeded.error().code, path + ": " + seeded.error().message);
  return seeded;
}

Status AuthorityCore::rotate_ca_if_due(bool upstream) {
  if (!upstream) {
    auto life = ca_life(ca_->signing_ca_der());
    if (!life.ok()) return life.error();
    auto [not_before, not_after] = *life;
    auto now = options_.clock();
    if (!ca_->has_prepared_rotation() && now >= not_before + (not_after - not_before) / 2) {
      if (Status s = ca_->prepare_rotation(); !s.ok()) return s;
      spdlog::info("authority: next CA prepared; it is in the bundle and signs from three quarters of this one's life");
    } else if (ca_->has_prepared_rotation() && now >= not_before + (not_after - not_before) * 3 / 4) {
      if (Status s = ca_->activate_prepared(); !s.ok()) return s;
      spdlog::info("authority: the prepared CA now signs");
    }
  }
  auto pruned = ca_->prune_expired();
  if (!pruned.ok()) return pruned.error();
  publish_bundle();
  return {};
}

bool AuthorityCore::publish_bundle() {
  bool pushed = false;
  Status s = feed_->publish([&]() -> Result<std::optional<v1::AuthorityUpdate>> {
    v1::Bundle current = bundle();
    if (current.sequence_number() == published_bundle_sequence_) return std::optional<v1::AuthorityUpdate>();
    published_bundle_sequence_ = current.sequence_number();
    v1::AuthorityUpdate update;
    *update.mutable_bundle() = std::move(current);
    pushed = true;
    stats_.updates_published.inc();
    return std::optional<v1::AuthorityUpdate>(std::move(update));
  });
  if (pushed) spdlog::info("authority: bundle sequence {} pushed to {} watchers", published_bundle_sequence_, feed_->size());
  return s.ok() && pushed;
}

Status AuthorityCore::prune() {
  auto pruned = store_->prune_expired(now());
  if (!pruned.ok()) return pruned.error();
  if (pruned->join_tokens + pruned->issued_svids + pruned->revocations > 0) {
    spdlog::debug("authority: pruned {} join tokens, {} issued SVID records, {} revocations", pruned->join_tokens,
                  pruned->issued_svids, pruned->revocations);
  }
  return {};
}

}  // namespace portcullis::attest::authority
