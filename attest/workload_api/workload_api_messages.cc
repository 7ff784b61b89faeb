#include "attest/workload_api/workload_api_messages.h"

#include <openssl/bn.h>
#include <openssl/mem.h>
#include <openssl/x509.h>

#include <cctype>

#include <google/protobuf/util/json_util.h>

#include "mtls/spiffe_bundle_json.h"
#include "mtls/spiffe_id.h"

namespace portcullis::attest {
namespace {

bool is_wildcard(const std::string& name) { return name == mtls::TrustBundleSet::kAnyTrustDomain; }

std::string svid_trust_domain(const mtls::X509Svid& svid, const mtls::IdentitySnapshot& snapshot) {
  auto id = mtls::SpiffeId::parse(svid.spiffe_id);
  return id.ok() ? std::string(id->trust_domain()) : snapshot.trust_domain;
}

}  // namespace

X509SVIDResponse x509_svid_response(const mtls::IdentitySnapshot& snapshot) {
  X509SVIDResponse out;
  for (const auto& svid : snapshot.svids) {
    X509SVID* s = out.add_svids();
    s->set_spiffe_id(svid.spiffe_id);
    s->set_x509_svid(svid.chain_der());
    s->set_x509_svid_key(svid.private_key_pkcs8);
    if (const auto* own = snapshot.bundles.find(svid_trust_domain(svid, snapshot))) s->set_bundle(own->authorities_der());
    s->set_hint(svid.hint);
  }
  for (const auto* bundle : snapshot.federated_bundles()) {
    if (is_wildcard(bundle->trust_domain())) continue;
    (*out.mutable_federated_bundles())[trust_domain_id(bundle->trust_domain())] = bundle->authorities_der();
  }
  return out;
}

X509BundlesResponse x509_bundles_response(const mtls::IdentitySnapshot& snapshot) {
  X509BundlesResponse out;
  for (const auto& [name, bundle] : snapshot.bundles.bundles()) {
    if (is_wildcard(name)) continue;
    (*out.mutable_bundles())[trust_domain_id(name)] = bundle->authorities_der();
  }
  return out;
}

Result<JWTBundlesResponse> jwt_bundles_response(const mtls::IdentitySnapshot& snapshot) {
  JWTBundlesResponse out;
  for (const auto& [name, bundle] : snapshot.bundles.bundles()) {
    if (is_wildcard(name)) continue;
    mtls::BundleJsonOptions options;
    options.keys = mtls::BundleKeys::kJwtOnly;
    auto json = mtls::to_spiffe_bundle_json(*bundle, options);
    if (!json.ok()) return json.error();
    (*out.mutable_bundles())[trust_domain_id(name)] = std::move(*json);
  }
  return out;
}

Result<google::protobuf::Struct> json_to_struct(const nlohmann::json& claims) {
  if (!claims.is_object()) return make_error(ErrorCode::kInvalidArgument, "claims are not a JSON object");
  google::protobuf::Struct out;
  auto status = google::protobuf::util::JsonStringToMessage(claims.dump(), &out);
  if (!status.ok()) return make_error(ErrorCode::kInternal, "cannot convert claims: " + std::string(status.message()));
  return out;
}

std::string leaf_serial_hex(std::string_view chain_der) {
  const auto* p = reinterpret_cast<const uint8_t*>(chain_der.data());
  bssl::UniquePtr<X509> leaf(d2i_X509(nullptr, &p, static_cast<long>(chain_der.size())));
  if (!leaf) return "";
  bssl::UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(X509_get_serialNumber(leaf.get()), nullptr));
  if (!bn) return "";
  bssl::UniquePtr<char> hex(BN_bn2hex(bn.get()));
  if (!hex) return "";
  std::string out(hex.get());
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace portcullis::attest
