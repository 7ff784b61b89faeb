#include "proxy/authority_channel.h"

#include <re2/re2.h>

#include "proxy/grpc/grpc_channel.h"

namespace portcullis::proxy {

attest::agent::ChannelFactory make_authority_channel_factory(asio::io_context& io,
                                                             attest::agent::AuthorityEndpoint endpoint,
                                                             std::string trust_domain,
                                                             std::shared_ptr<const mtls::TrustBundle> bootstrap) {
  return [&io, endpoint = std::move(endpoint), trust_domain = std::move(trust_domain), bootstrap = std::move(bootstrap)](
             const attest::agent::NodeCredentials& creds) -> Result<std::shared_ptr<grpc::Channel>> {
    const auto& bundle = creds.authority_bundle ? creds.authority_bundle : bootstrap;
    if (!bundle) return make_error(ErrorCode::kFailedPrecondition, "no bundle to verify the authority with");
    mtls::TlsContextConfig config;
    config.server = false;
    if (creds.node_svid) {
      config.certificate_chain = mtls::DataSource{"", creds.node_svid->chain_pem()};
      config.private_key = mtls::DataSource{"", creds.node_svid->key_pem()};
    }
    config.trust_domains.push_back(mtls::TrustDomainSource{trust_domain, mtls::DataSource{"", bundle->authorities_pem()}});
    config.san_matchers.push_back(mtls::SanMatcher{
        mtls::SanMatcher::Type::kUri,
        config::StringMatcher(config::StringMatcher::Kind::kExact, endpoint.server_spiffe_id, false, nullptr)});
    config.alpn_protocols = {"h2"};
    auto tls = mtls::TlsContext::create(config);
    if (!tls.ok()) return make_error(tls.error().code, "authority client TLS: " + tls.error().message);
    GrpcChannelOptions options;
    options.address = endpoint.address;
    options.tls = std::move(tls.value());
    return std::shared_ptr<grpc::Channel>(GrpcChannel::create(io, std::move(options)));
  };
}

}  // namespace portcullis::proxy
