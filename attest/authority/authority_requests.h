#pragma once

#include <string_view>

#include "attest/authority/authority_config.h"
#include "attest/authority/authority_messages.h"
#include "common/result.h"

namespace portcullis::attest::authority {

// Request validation for the Authority and AuthorityAdmin calls: sizes and counts against the
// configured limits, and the shape of every field, before the core spends a join token, a store
// write or a signature on it. Each returns kInvalidArgument naming the field (workloads[3].csrs[0])
// and the limit. Pure functions; thread-safe.

// check_csr: a PKCS#10 DER of at most max_csr_bytes that parses and whose self-signature
// verifies (proof the requester holds the key).
Status check_csr(std::string_view field, std::string_view der, const AuthorityLimits& limits);
// check_selectors: at most max_selectors_per_workload, each "TYPE:KEY:VALUE" of at most
// max_selector_bytes.
Status check_selectors(std::string_view field, const google::protobuf::RepeatedPtrField<v1::Selector>& selectors,
                       const AuthorityLimits& limits);
// check_serial: 1..64 lowercase hex digits (how we write serials).
Status check_serial(std::string_view field, std::string_view serial);

Status check_request(const v1::AttestNodeRequest& request, const AuthorityLimits& limits);
Status check_request(const v1::RenewNodeRequest& request, const AuthorityLimits& limits);
Status check_request(const v1::SignWorkloadSvidsRequest& request, const AuthorityLimits& limits);
Status check_request(const v1::MintJwtSvidRequest& request, const AuthorityLimits& limits);
Status check_request(const v1::RevokeSvidsRequest& request, const AuthorityLimits& limits);
// check_entry: the sizes of an admin entry (the store validates the content).
Status check_entry(const v1::RegistrationEntry& entry, const AuthorityLimits& limits);

}  // namespace portcullis::attest::authority
