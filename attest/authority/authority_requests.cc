#include "attest/authority/authority_requests.h"

#include <string>

#include "attest/authority/csr.h"
#include "attest/authority/registration_entry.h"

namespace portcullis::attest::authority {
namespace {

Status invalid(std::string_view field, const std::string& message) {
  return make_error(ErrorCode::kInvalidArgument, std::string(field) + ": " + message);
}

Status check_count(std::string_view field, size_t n, size_t max, std::string_view limit) {
  if (n <= max) return {};
  return invalid(field, std::to_string(n) + " exceed the limit of " + std::to_string(max) + " (limits." +
                            std::string(limit) + ")");
}

Status check_size(std::string_view field, size_t n, size_t max, std::string_view limit) {
  if (n <= max) return {};
  return invalid(field, std::to_string(n) + " bytes exceed the limit of " + std::to_string(max) + " (limits." +
                            std::string(limit) + ")");
}

std::string at(std::string_view field, size_t i) { return std::string(field) + "[" + std::to_string(i) + "]"; }

}  // namespace

Status check_csr(std::string_view field, std::string_view der, const AuthorityLimits& limits) {
  if (der.empty()) return invalid(field, "a PKCS#10 certificate signing request (DER) is required");
  if (Status s = check_size(field, der.size(), limits.max_csr_bytes, "max_csr_bytes"); !s.ok()) return s;
  CsrLimits csr_limits;
  csr_limits.max_csr_bytes = limits.max_csr_bytes;
  CsrError error;
  if (!csr_public_key(der, csr_limits, &error)) return invalid(field, error.message);
  return {};
}

Status check_selectors(std::string_view field, const google::protobuf::RepeatedPtrField<v1::Selector>& selectors,
                       const AuthorityLimits& limits) {
  if (Status s = check_count(field, selectors.size(), limits.max_selectors_per_workload, "max_selectors_per_workload");
      !s.ok()) {
    return s;
  }
  for (int i = 0; i < selectors.size(); ++i) {
    if (Status s = validate_selector(selector_string(selectors[i]), limits.max_selector_bytes); !s.ok()) {
      return invalid(at(field, i), s.error().message);
    }
  }
  return {};
}

Status check_serial(std::string_view field, std::string_view serial) {
  if (serial.empty() || serial.size() > 64) return invalid(field, "a serial is 1 to 64 lowercase hex digits");
  for (char c : serial) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return invalid(field, "a serial is 1 to 64 lowercase hex digits");
    }
  }
  return {};
}

Status check_request(const v1::AttestNodeRequest& request, const AuthorityLimits& limits) {
  if (request.evidence_case() != v1::AttestNodeRequest::kJoinToken) {
    return invalid("evidence", "no attestation evidence (join_token)");
  }
  if (request.join_token().empty()) return invalid("join_token", "must not be empty");
  if (Status s = check_size("join_token", request.join_token().size(), limits.max_id_bytes, "max_id_bytes"); !s.ok()) {
    return s;
  }
  return check_csr("csr", request.csr(), limits);
}

Status check_request(const v1::RenewNodeRequest& request, const AuthorityLimits& limits) {
  return check_csr("csr", request.csr(), limits);
}

Status check_request(const v1::SignWorkloadSvidsRequest& request, const AuthorityLimits& limits) {
  if (Status s = check_count("workloads", request.workloads_size(), limits.max_workloads_per_request,
                             "max_workloads_per_request");
      !s.ok()) {
    return s;
  }
  for (int i = 0; i < request.workloads_size(); ++i) {
    const auto& w = request.workloads(i);
    std::string field = at("workloads", i);
    if (Status s = check_size(field + ".workload_key", w.workload_key().size(), limits.max_id_bytes, "max_id_bytes");
        !s.ok()) {
      return s;
    }
    if (Status s = check_selectors(field + ".selectors", w.selectors(), limits); !s.ok()) return s;
    if (Status s = check_count(field + ".csrs", w.csrs_size(), limits.max_csrs_per_workload, "max_csrs_per_workload");
        !s.ok()) {
      return s;
    }
    for (int c = 0; c < w.csrs_size(); ++c) {
      if (Status s = check_csr(at(field + ".csrs", c), w.csrs(c), limits); !s.ok()) return s;
    }
  }
  return {};
}

Status check_request(const v1::MintJwtSvidRequest& request, const AuthorityLimits& limits) {
  if (request.selectors().empty()) return invalid("selectors", "at least one is required");
  if (Status s = check_selectors("selectors", request.selectors(), limits); !s.ok()) return s;
  if (Status s = check_size("spiffe_id", request.spiffe_id().size(), limits.max_id_bytes, "max_id_bytes"); !s.ok()) {
    return s;
  }
  if (request.audience().empty()) return invalid("audience", "at least one is required");
  if (Status s = check_count("audience", request.audience_size(), limits.max_audiences, "max_audiences"); !s.ok()) {
    return s;
  }
  for (int i = 0; i < request.audience_size(); ++i) {
    if (request.audience(i).empty()) return invalid(at("audience", i), "must not be empty");
    if (Status s = check_size(at("audience", i), request.audience(i).size(), limits.max_audience_bytes,
                              "max_audience_bytes");
        !s.ok()) {
      return s;
    }
  }
  return {};
}

Status check_request(const v1::RevokeSvidsRequest& request, const AuthorityLimits& limits) {
  if (Status s = check_count("serials", request.serials_size(), limits.max_serials_per_revoke, "max_serials_per_revoke");
      !s.ok()) {
    return s;
  }
  for (int i = 0; i < request.serials_size(); ++i) {
    if (Status s = check_serial(at("serials", i), request.serials(i)); !s.ok()) return s;
  }
  return check_size("reason", request.reason().size(), limits.max_id_bytes, "max_id_bytes");
}

Status check_entry(const v1::RegistrationEntry& entry, const AuthorityLimits& limits) {
  for (auto [field, value] : {std::pair{"id", &entry.id()}, std::pair{"spiffe_id", &entry.spiffe_id()},
                              std::pair{"parent_id", &entry.parent_id()}}) {
    if (Status s = check_size(field, value->size(), limits.max_id_bytes, "max_id_bytes"); !s.ok()) return s;
  }
  if (Status s = check_count("selectors", entry.selectors_size(), limits.max_selectors_per_entry,
                             "max_selectors_per_entry");
      !s.ok()) {
    return s;
  }
  return check_count("dns_names", entry.dns_names_size(), limits.max_dns_names_per_entry, "max_dns_names_per_entry");
}

}  // namespace portcullis::attest::authority
