#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "attest/authority/registration_entry.h"
#include "common/result.h"
#include "config/node.h"

namespace portcullis::attest::authority {

// load_entries_file reads a YAML seed of registration entries (the authority's and the embedded
// authority's `entries_file`):
//
//   entries:
//     - spiffe_id: spiffe://example.org/web
//       parent_id: spiffe://example.org/node/join_token/4f2a...   # optional: any attested node
//       selectors: ["unix:uid:1000", "unix:sha256:9f86d0..."]    # all must match
//       x509_svid_ttl: 1h        # optional, Envoy duration; 0/absent: the authority default
//       jwt_svid_ttl: 5m         # optional
//       dns_names: [web.local]   # optional
//
// Every problem is reported, each as `file:line:column: path: message`, in one kInvalidArgument
// error; the entries come back normalized (selectors sorted) and without ids, ready for
// AuthorityStore::seed_entries. `trust_domain`, when non-empty, is the only one IDs may name.
Result<std::vector<RegistrationEntry>> load_entries_file(const std::string& path, const EntryLimits& limits = {},
                                                         std::string_view trust_domain = {});

// parse_entries is load_entries_file's parser over an already loaded document root.
std::vector<RegistrationEntry> parse_entries(const config::Node& root, const EntryLimits& limits,
                                             std::string_view trust_domain, config::ErrorList& errors);

}  // namespace portcullis::attest::authority
