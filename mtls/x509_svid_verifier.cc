#include "mtls/x509_svid_verifier.h"

#include <openssl/bn.h>
#include <openssl/mem.h>
#include <openssl/x509v3.h>

#include <vector>

#include "mtls/spiffe_id.h"
#include "mtls/ssl_error.h"

namespace portcullis::mtls {
namespace {

// Peer-controlled text (a SAN can be kilobytes) is cut before it reaches logs and audit records.
std::string clip(std::string_view peer_text) {
  constexpr size_t kMax = 256;
  if (peer_text.size() <= kMax) return std::string(peer_text);
  return std::string(peer_text.substr(0, kMax)) + "...(" + std::to_string(peer_text.size()) + " bytes)";
}

bool fail(SvidVerifyError* out, SvidRejection reason, std::string message) {
  *out = SvidVerifyError{reason, std::move(message)};
  return false;
}

std::string serial_hex(X509* cert) {
  bssl::UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr));
  if (!bn) return "";
  bssl::UniquePtr<char> hex(BN_bn2hex(bn.get()));
  std::string out(hex.get());
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

int64_t not_after_unix(X509* cert) {
  int days = 0, seconds = 0;
  bssl::UniquePtr<ASN1_TIME> epoch(ASN1_TIME_set(nullptr, 0));
  if (!ASN1_TIME_diff(&days, &seconds, epoch.get(), X509_get0_notAfter(cert))) return 0;
  return static_cast<int64_t>(days) * 86400 + seconds;
}

bool check_leaf(X509* leaf, SvidVerifyError* out_error) {
  // X509_get_extension_flags caches the parsed extensions; EXFLAG_INVALID means they did not parse.
  uint32_t flags = X509_get_extension_flags(leaf);
  if (flags & EXFLAG_INVALID) return fail(out_error, SvidRejection::kChainInvalid, "leaf extensions do not parse");
  if (flags & EXFLAG_CA) return fail(out_error, SvidRejection::kLeafIsCa, "leaf certificate has CA:TRUE");
  if (!(flags & EXFLAG_KUSAGE)) return fail(out_error, SvidRejection::kLeafKeyUsage, "leaf has no keyUsage extension");
  uint32_t ku = X509_get_key_usage(leaf);
  if (!(ku & KU_DIGITAL_SIGNATURE)) {
    return fail(out_error, SvidRejection::kLeafKeyUsage, "leaf keyUsage lacks digitalSignature");
  }
  if (ku & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) {
    return fail(out_error, SvidRejection::kLeafKeyUsage, "leaf keyUsage has keyCertSign or cRLSign");
  }
  return true;
}

SvidRejection map_x509_error(int err) {
  switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED: return SvidRejection::kExpired;
    case X509_V_ERR_CERT_NOT_YET_VALID: return SvidRejection::kNotYetValid;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: return SvidRejection::kUnknownCa;
    case X509_V_ERR_INVALID_CA: return SvidRejection::kIntermediateNotCa;
    case X509_V_ERR_CERT_SIGNATURE_FAILURE: return SvidRejection::kBadSignature;
    default: return SvidRejection::kChainInvalid;
  }
}

// verify_chain_at runs RFC 5280 path validation at `when`; returns the X509_V_* result.
int verify_chain_at(std::span<X509* const> chain, const TrustBundle& bundle, time_t when) {
  bssl::UniquePtr<STACK_OF(X509)> intermediates(sk_X509_new_null());
  for (size_t i = 1; i < chain.size(); ++i) {
    X509_up_ref(chain[i]);  // the stack's deleter frees what it holds
    sk_X509_push(intermediates.get(), chain[i]);
  }
  bssl::UniquePtr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  if (!ctx || !X509_STORE_CTX_init(ctx.get(), bundle.store(), chain[0], intermediates.get())) {
    drain_ssl_errors();
    return X509_V_ERR_UNSPECIFIED;
  }
  X509_STORE_CTX_trusted_stack(ctx.get(), bundle.anchors());
  X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()), when);
  int ok = X509_verify_cert(ctx.get());
  int err = ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx.get());
  drain_ssl_errors();
  return err;
}

}  // namespace

std::vector<std::string> subject_alt_names(X509* cert, int type) {
  std::vector<std::string> out;
  bssl::UniquePtr<GENERAL_NAMES> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return out;
  for (size_t i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != type) continue;
    const ASN1_IA5STRING* s = type == GEN_URI ? gn->d.uniformResourceIdentifier : gn->d.dNSName;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
  }
  return out;
}

const char* svid_rejection_name(SvidRejection r) {
  switch (r) {
    case SvidRejection::kNoCertificate: return "no_certificate";
    case SvidRejection::kNoUriSan: return "no_uri_san";
    case SvidRejection::kMultipleUriSans: return "multiple_uri_sans";
    case SvidRejection::kInvalidSpiffeId: return "invalid_spiffe_id";
    case SvidRejection::kNoWorkloadPath: return "no_workload_path";
    case SvidRejection::kLeafIsCa: return "leaf_is_ca";
    case SvidRejection::kLeafKeyUsage: return "leaf_key_usage";
    case SvidRejection::kUnknownTrustDomain: return "unknown_trust_domain";
    case SvidRejection::kUnknownCa: return "unknown_ca";
    case SvidRejection::kIntermediateNotCa: return "intermediate_not_ca";
    case SvidRejection::kExpired: return "expired";
    case SvidRejection::kNotYetValid: return "not_yet_valid";
    case SvidRejection::kBadSignature: return "bad_signature";
    case SvidRejection::kChainInvalid: return "chain_invalid";
    case SvidRejection::kInvalidAttestedClaims: return "invalid_attested_claims";
    case SvidRejection::kSanMismatch: return "san_mismatch";
    case SvidRejection::kRevoked: return "revoked";
  }
  return "unknown";
}

Result<std::string> leaf_spiffe_id(X509* leaf) {
  auto uris = subject_alt_names(leaf, GEN_URI);
  if (uris.size() != 1) return make_error(ErrorCode::kInvalidArgument, "certificate does not have exactly one URI SAN");
  auto id = SpiffeId::parse(uris[0]);
  if (!id.ok()) return id.error();
  return id->str();
}

bool verify_x509_svid(std::span<X509* const> chain, const TrustBundleSet& bundles, const VerifyOptions& options,
                      PeerIdentity* out_identity, SvidVerifyError* out_error) {
  if (chain.empty() || chain[0] == nullptr) {
    return fail(out_error, SvidRejection::kNoCertificate, "peer presented no certificate");
  }
  X509* leaf = chain[0];
  auto uris = subject_alt_names(leaf, GEN_URI);
  if (uris.empty()) return fail(out_error, SvidRejection::kNoUriSan, "leaf has no URI SAN");
  if (uris.size() > 1) {
    return fail(out_error, SvidRejection::kMultipleUriSans, "leaf has " + std::to_string(uris.size()) + " URI SANs");
  }
  auto id = SpiffeId::parse(uris[0]);
  if (!id.ok()) return fail(out_error, SvidRejection::kInvalidSpiffeId, "URI SAN '" + clip(uris[0]) + "': " + id.error().message);
  if (id->is_trust_domain_id()) {
    return fail(out_error, SvidRejection::kNoWorkloadPath, clip(id->str()) + " names a trust domain, not a workload");
  }
  if (!check_leaf(leaf, out_error)) return false;
  const TrustBundle* bundle = bundles.find(id->trust_domain());
  if (bundle == nullptr) {
    return fail(out_error, SvidRejection::kUnknownTrustDomain,
                "no trust bundle for trust domain '" + clip(id->trust_domain()) + "' of " + clip(id->str()));
  }
  time_t now = std::chrono::system_clock::to_time_t(options.now);
  int err = verify_chain_at(chain, *bundle, now);
  // Clock skew: an SVID just past expiry or just before validity is accepted within the allowance.
  if (err == X509_V_ERR_CERT_HAS_EXPIRED) {
    if (verify_chain_at(chain, *bundle, now - options.clock_skew.count()) == X509_V_OK) err = X509_V_OK;
  } else if (err == X509_V_ERR_CERT_NOT_YET_VALID) {
    if (verify_chain_at(chain, *bundle, now + options.clock_skew.count()) == X509_V_OK) err = X509_V_OK;
  }
  if (err != X509_V_OK) {
    return fail(out_error, map_x509_error(err), clip(id->str()) + ": " + X509_verify_cert_error_string(err));
  }
  // Claims are read only from a chain that verified: an untrusted certificate's claims are noise.
  auto claims = attested_claims_of(leaf, options.claims_limits);
  if (!claims.ok()) return fail(out_error, SvidRejection::kInvalidAttestedClaims, clip(id->str()) + ": " + claims.error().message);
  *out_identity = PeerIdentity{id->str(), std::string(id->trust_domain()), serial_hex(leaf), not_after_unix(leaf),
                               std::move(claims.value())};
  return true;
}

}  // namespace portcullis::mtls
