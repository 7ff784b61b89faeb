#pragma once

#include <memory>

#include <asio/io_context.hpp>

#include "attest/agent/agent_config.h"
#include "attest/agent/remote_authority_api.h"
#include "mtls/trust_bundle.h"

namespace portcullis::proxy {

// make_authority_channel_factory is how the sidecar hands the agent's RemoteAuthorityApi its
// channels: for each NodeCredentials it builds a client TlsContext (the node SVID's chain and
// in-memory key as the client certificate when there is one; the credentials' authority bundle,
// or `bootstrap` before the first one arrives, as the trust anchors of the trust domain; the
// endpoint's server_spiffe_id as the one accepted URI SAN; ALPN h2) and a GrpcChannel on `io`
// (the main loop). The agent calls it again after every node SVID renewal or bundle change, so a
// renewed certificate is used by the next connection while calls in flight finish on the old one.
attest::agent::ChannelFactory make_authority_channel_factory(asio::io_context& io,
                                                             attest::agent::AuthorityEndpoint endpoint,
                                                             std::string trust_domain,
                                                             std::shared_ptr<const mtls::TrustBundle> bootstrap);

}  // namespace portcullis::proxy
