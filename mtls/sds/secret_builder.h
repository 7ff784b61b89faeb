#pragma once

#include <string>
#include <vector>

#include "common/grpc/status.h"
#include "envoy/config/core/v3/base.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb.h"
#include "mtls/sds/sds_config.h"
#include "mtls/svid_store.h"

namespace portcullis::mtls {

// kSecretTypeUrl is SDS's resource type (wire facts §3.1), in requests and in every Any.
inline constexpr const char* kSecretTypeUrl = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
inline constexpr const char* kSpiffeValidatorName = "envoy.tls.cert_validator.spiffe";

// ValidationMode is how bundles are encoded (wire facts §3.5): kSpiffe as a
// CertificateValidationContext.custom_validator_config holding a SPIFFECertValidatorConfig (one
// trust domain per bundle, so Envoy verifies each peer against its own trust domain only), or
// kLegacy as plain `trusted_ca` PEM (Envoy < 1.18, or SPIFFE validation disabled).
enum class ValidationMode { kSpiffe, kLegacy };

// validation_mode decides as SPIRE's agent does: legacy when `disabled` (the sds block's
// disable_spiffe_cert_validation), when Node.metadata has disable_spiffe_cert_validation true
// (bool or "true"), or when Node.user_agent_build_version is older than 1.18; SPIFFE otherwise,
// including when no build version is sent (SPIRE HEAD).
ValidationMode validation_mode(const ::envoy::config::core::v3::Node& node, bool disabled);

// build_secrets resolves requested resource names against one caller's identity view exactly as
// SPIRE's sdsv3 handler does (wire facts §3.5), in its order: the own bundle (named by trust
// domain ID, or `ROOTCA`, or `ALL` — only one of the three per request), federated bundles by
// trust domain ID, then SVIDs by SPIFFE ID or `default` (the first SVID). Empty `names` means
// everything: every bundle and every SVID, each named by its ID. `view` may be null (the caller
// is entitled to nothing). Errors: a name the view cannot serve -> INVALID_ARGUMENT "workload is
// not authorized for the requested identities [...]"; `ALL` in legacy mode -> INTERNAL.
// Pure; callable from any thread.
grpc::GrpcResult<std::vector<::envoy::extensions::transport_sockets::tls::v3::Secret>> build_secrets(
    const IdentitySnapshot* view, const std::vector<std::string>& names, ValidationMode mode, const SdsNames& special);

}  // namespace portcullis::mtls
