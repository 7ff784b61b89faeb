#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace portcullis::attest::authority {

// RegistrationEntry says which workloads get which SPIFFE ID: a workload attested on a node whose
// node SPIFFE ID is `parent_id` (empty: any attested node) and whose attested selectors include
// every one of `selectors` gets an SVID for `spiffe_id`. Plain value type; the store assigns `id`,
// `created_at` and `revision`.
struct RegistrationEntry {
  std::string id;                         // 128-bit random, lowercase hex (or caller-chosen, see validate_entry_id)
  std::string spiffe_id;                  // the workload's SPIFFE ID
  std::string parent_id;                  // a node SPIFFE ID; empty = any attested node
  std::vector<std::string> selectors;     // "TYPE:KEY:VALUE", sorted, deduplicated, all must match
  std::chrono::seconds x509_svid_ttl{0};  // 0: the authority default
  std::chrono::seconds jwt_svid_ttl{0};   // 0: the authority default
  std::vector<std::string> dns_names;     // SANs, in the given order (the first may become the CN)
  int64_t created_at = 0;                 // Unix seconds
  int64_t revision = 0;                   // 1 on create, bumped on every update

  bool operator==(const RegistrationEntry&) const = default;
};

// EntryLimits bounds what one entry may hold, so an admin request or seed file cannot make the
// store (and every matching pass over it) arbitrarily large.
struct EntryLimits {
  size_t max_selectors = 32;
  size_t max_selector_bytes = 2048;  // cgroup paths can be long
  size_t max_dns_names = 32;
  std::chrono::seconds max_ttl{30 * 24 * 3600};
};

// kNodePathPrefix is the SPIFFE ID path under which the authority names nodes
// (`/node/join_token/<id>`, `/node/embedded/<host>`). Entries may not claim it, or a workload
// could be issued an identity the authority accepts as a node.
inline constexpr std::string_view kNodePathPrefix = "/node";
// kReservedPathPrefix is where the authority names itself (`/portcullis/authority`, the ID agents
// pin for the authority's server certificate). An entry there would hand a workload an SVID that
// agents accept as the authority: it could serve them a forged bundle.
inline constexpr std::string_view kReservedPathPrefix = "/portcullis";

// validate_selector checks one "TYPE:KEY:VALUE" selector: three non-empty parts (VALUE may contain
// further colons, e.g. cgroup paths), printable ASCII only, at most `max_bytes`.
Status validate_selector(std::string_view selector, size_t max_bytes);

// validate_dns_name checks a DNS SAN: dot-separated labels of [A-Za-z0-9-] (1..63 bytes, no
// leading or trailing '-'), at most 253 bytes, optionally a leading "*." wildcard label.
Status validate_dns_name(std::string_view name);

// validate_entry_id checks a caller-supplied entry id: 1..64 bytes of [A-Za-z0-9._-].
Status validate_entry_id(std::string_view id);

// validate_workload_spiffe_id checks an entry's spiffe_id: a valid SPIFFE ID with a path, not
// under kNodePathPrefix or kReservedPathPrefix, and in `trust_domain` when that is non-empty.
Status validate_workload_spiffe_id(std::string_view id, std::string_view trust_domain);

// validate_parent_id checks an entry's parent_id: empty, or a valid SPIFFE ID (in `trust_domain`
// when that is non-empty).
Status validate_parent_id(std::string_view id, std::string_view trust_domain);

// normalize_entry validates every field of `entry` except id/created_at/revision against `limits`
// and sorts and deduplicates its selectors and dns names (dns names keep first-seen order). The
// first problem is the error (kInvalidArgument), prefixed with the field name.
Status normalize_entry(RegistrationEntry& entry, const EntryLimits& limits, std::string_view trust_domain);

// same_registration is the duplicate rule: two entries register the same thing when spiffe_id,
// parent_id and (normalized) selectors are equal; TTLs and DNS names are attributes of it.
inline bool same_registration(const RegistrationEntry& a, const RegistrationEntry& b) {
  return a.spiffe_id == b.spiffe_id && a.parent_id == b.parent_id && a.selectors == b.selectors;
}

// match_entries returns the entries that apply to a workload attested on node `node_id` with
// `selectors`: parent_id empty or equal to node_id, and every entry selector contained in
// `selectors`. `entries` must be sorted by id (AuthorityStore::entries() is), so the result is too.
// `selectors` should be sorted and deduplicated; an unsorted list is sorted on a copy first. No
// locks, no allocation beyond the result; pointers live as long as `entries`.
std::vector<const RegistrationEntry*> match_entries(const std::vector<RegistrationEntry>& entries,
                                                    std::string_view node_id,
                                                    const std::vector<std::string>& selectors);

// random_hex returns 2*`bytes` lowercase hex characters from the CSPRNG.
std::string random_hex(size_t bytes);

}  // namespace portcullis::attest::authority
