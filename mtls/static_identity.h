#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "mtls/identity_config.h"
#include "mtls/svid_store.h"

namespace portcullis::mtls {

// LoadedIdentity is one complete read of a static identity's files.
struct LoadedIdentity {
  std::shared_ptr<IdentitySnapshot> snapshot;  // version and built_at left for the store to set
  std::string source_digest;                   // SHA-256 over every file's text: equal means unchanged
};

// load_static_identity reads every file `config` names and checks them together: the chain's leaf
// is a valid X.509-SVID of config.trust_domain that chains to trust_bundle, the private key
// matches the leaf, the JWT signing key is EC P-256 and its kid does not name another key in the
// bundle, bundles parse. Errors name the file and the rule. Pure apart from reading the files;
// thread-safe.
Result<LoadedIdentity> load_static_identity(const IdentityConfig& config);

}  // namespace portcullis::mtls
