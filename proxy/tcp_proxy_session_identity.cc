// The identity side of a TCP proxy session: which TLS context each side uses (the built-in
// identity's selector, per connection), and closing the session when a peer's certificate is
// revoked.
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

#include "proxy/tcp_proxy_session.h"

namespace portcullis::proxy {

bool TcpProxySession::select_tls(mtls::ConnectionContext::Side side, std::shared_ptr<const mtls::TlsContext>* out) {
  const bool listener = side == mtls::ConnectionContext::Side::kListener;
  mtls::IdentitySelector* selector = listener ? listener_->tls_selector.get() : cluster_.tls_selector();
  if (selector == nullptr) {
    *out = listener ? listener_->tls : cluster_.tls();
    return true;
  }
  auto selected = selector->context_for(selector->per_connection() ? connection_context(side)
                                                                   : mtls::ConnectionContext{.side = side});
  if (selected.ok() && *selected) {
    *out = std::move(selected.value());
    return true;
  }
  std::string reason = selected.ok() ? "no TLS context for this connection" : selected.error().message;
  spdlog::debug("{} {}: connection {} refused: {}", listener ? "listener" : "cluster",
                listener ? listener_->name : cluster_.name(), id_, reason);
  (listener ? *listener_->ssl_stats : cluster_.ssl_stats()).connection_error.inc();
  audit("deny", "", std::move(reason));
  close();
  return false;
}

mtls::ConnectionContext TcpProxySession::connection_context(mtls::ConnectionContext::Side side) const {
  mtls::ConnectionContext c;
  c.side = side;
  c.fd = const_cast<Side&>(downstream_).fd();
  socklen_t len = sizeof c.local;
  ::getsockname(c.fd, reinterpret_cast<sockaddr*>(&c.local), &len);
  len = sizeof c.remote;
  ::getpeername(c.fd, reinterpret_cast<sockaddr*>(&c.remote), &len);
  if (side == mtls::ConnectionContext::Side::kListener && !cluster_.empty()) {
    // Inbound `default` is the workload behind the cluster; a sidecar's inbound cluster is its
    // one local app, so the first endpoint names it.
    const auto& ep = cluster_.endpoints().front();
    sockaddr_storage up{};
    std::memcpy(&up, ep.data(), std::min<size_t>(ep.size(), sizeof up));
    c.upstream = up;
  }
  return c;
}

TcpProxySession::VerifiedPeers TcpProxySession::verified_peers() const {
  VerifiedPeers out;
  if (state_ == State::kClosed) return out;  // closed already, still linked until destroyed
  if (downstream_.tls && downstream_.tls->peer()) out.downstream = &*downstream_.tls->peer();
  if (upstream_.tls && upstream_.tls->peer()) out.upstream = &*upstream_.tls->peer();
  return out;
}

void TcpProxySession::close_revoked(const mtls::PeerIdentity& peer, const mtls::RevokedSerial& revoked) {
  const bool downstream = downstream_.tls && downstream_.tls->peer() && &*downstream_.tls->peer() == &peer;
  spdlog::info("{} {}: closing connection {}: {} peer {} presented revoked serial {}",
               downstream ? "listener" : "cluster", downstream ? listener_->name : cluster_.name(), id_,
               downstream ? "downstream" : "upstream", peer.spiffe_id, peer.serial);
  audit("revoked", "", std::string(downstream ? "downstream" : "upstream") + " peer certificate serial " + peer.serial +
                           " was revoked", &peer);
  close();
}

}  // namespace portcullis::proxy
