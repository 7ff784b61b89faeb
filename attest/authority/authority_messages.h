#pragma once

#include <string>
#include <vector>

#include "attest/authority/authority_store.h"
#include "attest/authority/registration_entry.h"
#include "common/result.h"
#include "portcullis/authority/v1/authority.pb.h"

namespace portcullis::attest::authority {

namespace v1 = ::portcullis::authority::v1;

// Conversions between the authority protocol's messages and the store's value types. Pure
// functions; validation beyond shape (selector syntax, limits) is the store's and the core's.

// selector_string is "type:value" (so "unix:uid:1000" for {type: unix, value: uid:1000}).
std::string selector_string(const v1::Selector& selector);
// selector_proto splits "TYPE:KEY:VALUE" at the first colon.
v1::Selector selector_proto(std::string_view selector);

// selector_strings converts, sorts and deduplicates a request's selectors.
std::vector<std::string> selector_strings(const google::protobuf::RepeatedPtrField<v1::Selector>& selectors);

RegistrationEntry entry_from_proto(const v1::RegistrationEntry& entry);
v1::RegistrationEntry entry_to_proto(const RegistrationEntry& entry);

v1::Revocation revocation_to_proto(const Revocation& revocation);

// split_update cuts `update` into messages of at most about `max_bytes` each (one revocation
// larger than that still goes alone). The first carries the bundle and full_revocation_set; the
// rest only revocations. A receiver adds every message's revocations to what it holds, so the
// set it enforces never loses an entry between the pieces.
std::vector<v1::AuthorityUpdate> split_update(const v1::AuthorityUpdate& update, size_t max_bytes);

}  // namespace portcullis::attest::authority
