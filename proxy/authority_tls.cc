#include "proxy/authority_tls.h"

#include "mtls/trust_bundle.h"

namespace portcullis::proxy {

Result<AuthorityTls> mint_authority_tls(attest::authority::AuthorityCore& core, std::chrono::seconds ttl) {
  auto requested_at = std::chrono::system_clock::now();
  auto cert = core.ca().issue_server_certificate({}, ttl);
  if (!cert.ok()) return make_error(cert.error().code, "cannot issue the authority's server SVID: " + cert.error().message);
  attest::authority::v1::Bundle bundle = core.bundle();
  std::string bundle_pem;
  for (const auto& der : bundle.x509_authorities()) bundle_pem += mtls::der_to_pem("CERTIFICATE", der);

  mtls::TlsContextConfig config;
  config.server = true;
  config.require_client_certificate = false;  // AttestNode has none; the service checks per call
  config.certificate_chain = mtls::DataSource{"", cert->certificate_chain_pem};
  config.private_key = mtls::DataSource{"", cert->private_key_pem};
  config.trust_domains.push_back(mtls::TrustDomainSource{core.options().trust_domain, mtls::DataSource{"", bundle_pem}});
  config.alpn_protocols = {"h2"};
  auto context = mtls::TlsContext::create(config);
  if (!context.ok()) return make_error(context.error().code, "authority TLS context: " + context.error().message);

  AuthorityTls out;
  out.context = std::move(context.value());
  out.spiffe_id = cert->spiffe_id;
  out.serial = out.context->certificates().empty() ? "" : out.context->certificates()[0].serial_number;
  // The CA back-dates not_before for clock skew; renewal is timed from when we asked.
  out.not_before = requested_at;
  out.not_after = cert->not_after;
  out.bundle_sequence = bundle.sequence_number();
  return out;
}

}  // namespace portcullis::proxy
