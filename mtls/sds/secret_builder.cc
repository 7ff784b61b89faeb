#include "mtls/sds/secret_builder.h"

#include <algorithm>
#include <set>

#include "envoy/extensions/transport_sockets/tls/v3/tls_spiffe_validator_config.pb.h"

namespace portcullis::mtls {
namespace {

namespace tls = ::envoy::extensions::transport_sockets::tls::v3;
using SecretList = std::vector<tls::Secret>;

constexpr std::string_view kSpiffeScheme = "spiffe://";

std::string td_id(const std::string& trust_domain) { return std::string(kSpiffeScheme) + trust_domain; }

tls::Secret tls_certificate(const X509Svid& svid, const std::string& name) {
  tls::Secret s;
  s.set_name(name);
  s.mutable_tls_certificate()->mutable_certificate_chain()->set_inline_bytes(svid.chain_pem());
  s.mutable_tls_certificate()->mutable_private_key()->set_inline_bytes(svid.key_pem());
  return s;
}

// validation_context builds one Secret from `bundles` (sorted by trust domain name).
tls::Secret validation_context(const std::vector<const TrustBundle*>& bundles, const std::string& name,
                               ValidationMode mode) {
  tls::Secret s;
  s.set_name(name);
  auto* vc = s.mutable_validation_context();
  if (mode == ValidationMode::kLegacy) {
    std::string pem;
    for (const TrustBundle* b : bundles) pem += b->authorities_pem();
    vc->mutable_trusted_ca()->set_inline_bytes(std::move(pem));
    return s;
  }
  tls::SPIFFECertValidatorConfig spiffe;
  for (const TrustBundle* b : bundles) {
    auto* td = spiffe.add_trust_domains();
    td->set_name(b->trust_domain());
    td->mutable_trust_bundle()->set_inline_bytes(b->authorities_pem());
  }
  vc->mutable_custom_validator_config()->set_name(kSpiffeValidatorName);
  vc->mutable_custom_validator_config()->mutable_typed_config()->PackFrom(spiffe);
  return s;
}

bool metadata_disables_spiffe(const ::envoy::config::core::v3::Node& node) {
  auto it = node.metadata().fields().find("disable_spiffe_cert_validation");
  if (it == node.metadata().fields().end()) return false;
  const auto& v = it->second;
  if (v.has_bool_value()) return v.bool_value();
  return v.has_string_value() && v.string_value() == "true";
}

std::string quoted_list(const std::set<std::string>& names) {
  std::string out = "[";
  for (const auto& n : names) out += (out.size() > 1 ? " " : "") + ("\"" + n + "\"");
  return out + "]";
}

// add_own_bundle serves at most one of {own trust domain ID, default bundle name, ALL}, the
// first that is asked for, as SPIRE's switch does.
grpc::GrpcStatus add_own_bundle(const IdentitySnapshot& view, bool everything, std::set<std::string>& wanted,
                                ValidationMode mode, const SdsNames& special, SecretList& out) {
  const TrustBundle* own = view.own_bundle();
  if (own == nullptr) return {};
  std::string own_id = td_id(view.trust_domain);
  if (everything || wanted.contains(own_id)) {
    out.push_back(validation_context({own}, own_id, mode));
    wanted.erase(own_id);
  } else if (wanted.contains(special.default_bundle)) {
    out.push_back(validation_context({own}, special.default_bundle, mode));
    wanted.erase(special.default_bundle);
  } else if (wanted.contains(special.all_bundles)) {
    if (mode == ValidationMode::kLegacy) {
      return {grpc::StatusCode::kInternal, "unable to use all bundles when SPIFFE validation is disabled"};
    }
    std::vector<const TrustBundle*> all;
    for (const auto& [name, bundle] : view.bundles.bundles()) all.push_back(bundle.get());
    out.push_back(validation_context(all, special.all_bundles, mode));
    wanted.erase(special.all_bundles);
  }
  return {};
}

}  // namespace

ValidationMode validation_mode(const ::envoy::config::core::v3::Node& node, bool disabled) {
  if (disabled || metadata_disables_spiffe(node)) return ValidationMode::kLegacy;
  if (!node.has_user_agent_build_version()) return ValidationMode::kSpiffe;
  const auto& v = node.user_agent_build_version().version();
  bool supported = v.major_number() > 1 || (v.major_number() == 1 && v.minor_number() >= 18);
  return supported ? ValidationMode::kSpiffe : ValidationMode::kLegacy;
}

grpc::GrpcResult<SecretList> build_secrets(const IdentitySnapshot* view, const std::vector<std::string>& names,
                                           ValidationMode mode, const SdsNames& special) {
  SecretList out;
  std::set<std::string> wanted(names.begin(), names.end());
  bool everything = names.empty();
  if (view != nullptr) {
    if (auto s = add_own_bundle(*view, everything, wanted, mode, special, out); !s.ok()) return s;
    for (const TrustBundle* fed : view->federated_bundles()) {  // sorted: the set is a std::map
      std::string id = td_id(fed->trust_domain());
      if (everything || wanted.contains(id)) {
        out.push_back(validation_context({fed}, id, mode));
        wanted.erase(id);
      }
    }
    for (size_t i = 0; i < view->svids.size(); ++i) {
      const X509Svid& svid = view->svids[i];
      if (everything || wanted.contains(svid.spiffe_id)) {
        out.push_back(tls_certificate(svid, svid.spiffe_id));
        wanted.erase(svid.spiffe_id);
      } else if (i == 0 && wanted.contains(special.default_svid)) {
        out.push_back(tls_certificate(svid, special.default_svid));
        wanted.erase(special.default_svid);
      }
    }
  }
  if (!wanted.empty()) {
    return grpc::GrpcStatus{grpc::StatusCode::kInvalidArgument,
                            "workload is not authorized for the requested identities " + quoted_list(wanted)};
  }
  return out;
}

}  // namespace portcullis::mtls
