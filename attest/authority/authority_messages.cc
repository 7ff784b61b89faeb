#include "attest/authority/authority_messages.h"

#include <algorithm>

namespace portcullis::attest::authority {

std::string selector_string(const v1::Selector& selector) { return selector.type() + ":" + selector.value(); }

v1::Selector selector_proto(std::string_view selector) {
  v1::Selector out;
  size_t colon = selector.find(':');
  out.set_type(std::string(selector.substr(0, colon)));
  if (colon != std::string_view::npos) out.set_value(std::string(selector.substr(colon + 1)));
  return out;
}

std::vector<std::string> selector_strings(const google::protobuf::RepeatedPtrField<v1::Selector>& selectors) {
  std::vector<std::string> out;
  out.reserve(selectors.size());
  for (const auto& s : selectors) out.push_back(selector_string(s));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

RegistrationEntry entry_from_proto(const v1::RegistrationEntry& entry) {
  RegistrationEntry out;
  out.id = entry.id();
  out.spiffe_id = entry.spiffe_id();
  out.parent_id = entry.parent_id();
  // Unsorted on purpose: the store normalizes, and validates each selector first.
  for (const auto& s : entry.selectors()) out.selectors.push_back(selector_string(s));
  out.x509_svid_ttl = std::chrono::seconds(entry.x509_svid_ttl_seconds());
  out.jwt_svid_ttl = std::chrono::seconds(entry.jwt_svid_ttl_seconds());
  out.dns_names.assign(entry.dns_names().begin(), entry.dns_names().end());
  out.created_at = entry.created_at();
  out.revision = entry.revision();
  return out;
}

v1::RegistrationEntry entry_to_proto(const RegistrationEntry& entry) {
  v1::RegistrationEntry out;
  out.set_id(entry.id);
  out.set_spiffe_id(entry.spiffe_id);
  out.set_parent_id(entry.parent_id);
  for (const auto& s : entry.selectors) *out.add_selectors() = selector_proto(s);
  out.set_x509_svid_ttl_seconds(entry.x509_svid_ttl.count());
  out.set_jwt_svid_ttl_seconds(entry.jwt_svid_ttl.count());
  for (const auto& n : entry.dns_names) out.add_dns_names(n);
  out.set_created_at(entry.created_at);
  out.set_revision(entry.revision);
  return out;
}

v1::Revocation revocation_to_proto(const Revocation& revocation) {
  v1::Revocation out;
  out.set_serial(revocation.serial);
  out.set_spiffe_id(revocation.spiffe_id);
  out.set_expires_at(revocation.expires_at);
  out.set_revoked_at(revocation.revoked_at);
  out.set_reason(revocation.reason);
  return out;
}

std::vector<v1::AuthorityUpdate> split_update(const v1::AuthorityUpdate& update, size_t max_bytes) {
  if (update.ByteSizeLong() <= max_bytes) return {update};
  std::vector<v1::AuthorityUpdate> out(1);
  if (update.has_bundle()) *out[0].mutable_bundle() = update.bundle();
  out[0].set_full_revocation_set(update.full_revocation_set());
  size_t bytes = out[0].ByteSizeLong();
  for (const auto& r : update.revocations()) {
    // A repeated field's element costs its size, a tag byte and a length varint (< 6 bytes).
    size_t cost = r.ByteSizeLong() + 6;
    if (out.back().revocations_size() > 0 && bytes + cost > max_bytes) {
      out.emplace_back();
      bytes = 0;
    }
    *out.back().add_revocations() = r;
    bytes += cost;
  }
  return out;
}

}  // namespace portcullis::attest::authority
