#include "mtls/tls_connection.h"

#include <openssl/err.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include "mtls/ssl_error.h"

namespace portcullis::mtls {
namespace {

// One batch: four full records, enough that the kernel sees large sends.
constexpr size_t kMaxBatchPlaintext = 64 * 1024;

}  // namespace


Result<std::unique_ptr<TlsConnection>> TlsConnection::create(std::shared_ptr<const TlsContext> context, int fd,
                                                             const std::string& sni) {
  std::unique_ptr<TlsConnection> conn(new TlsConnection(std::move(context), fd));
  SSL* ssl = conn->ssl_.get();
  bssl::UniquePtr<BIO> bio = conn->socket_bio_.new_bio();
  if (ssl == nullptr || !bio) return make_error(ErrorCode::kInternal, "SSL_new: " + drain_ssl_errors());
  BIO* b = bio.release();
  SSL_set_bio(ssl, b, b);  // one reference serves as both: SSL_set_bio takes it
  // After the handshake the connection needs none of the handshake configuration (certificates,
  // curves, ALPN list): freeing it is a large part of what an idle connection costs.
  SSL_set_shed_handshake_config(ssl, 1);
  if (conn->context_->server()) {
    SSL_set_accept_state(ssl);
  } else {
    SSL_set_connect_state(ssl);
    if (!sni.empty() && !SSL_set_tlsext_host_name(ssl, sni.c_str())) {
      return make_error(ErrorCode::kInvalidArgument, "bad SNI '" + sni + "': " + drain_ssl_errors());
    }
  }
  SSL_set_ex_data(ssl, TlsContext::connection_ex_index(), conn.get());
  return conn;
}

TlsConnection::TlsConnection(std::shared_ptr<const TlsContext> context, int fd)
    : context_(std::move(context)), socket_bio_(fd), ssl_(SSL_new(context_->ssl_ctx())) {}

TlsConnection::~TlsConnection() = default;

void TlsConnection::record_verification(std::optional<PeerIdentity> peer, std::optional<SvidVerifyError> error) {
  peer_ = std::move(peer);
  verify_error_ = std::move(error);
}

TlsConnection::Io TlsConnection::classify(int ret, const char* op) {
  int err = SSL_get_error(ssl_.get(), ret);
  switch (err) {
    case SSL_ERROR_WANT_READ: return Io::kWantRead;
    case SSL_ERROR_WANT_WRITE: return Io::kWantWrite;
    case SSL_ERROR_ZERO_RETURN: return Io::kEof;
    case SSL_ERROR_SYSCALL:
      if (ret == 0 || errno == 0) {
        // A FIN without close_notify: treat as the end of the peer's stream, as proxies do.
        drain_ssl_errors();
        return Io::kEof;
      }
      error_ = std::string(op) + ": " + std::strerror(errno);
      drain_ssl_errors();
      return Io::kError;
    default: {
      uint32_t first = ERR_peek_error();
      if (ERR_GET_LIB(first) == ERR_LIB_SSL && ERR_GET_REASON(first) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE &&
          !verify_error_) {
        // Rejected by BoringSSL before our verify callback ran: record it as an SVID rejection too.
        verify_error_ = SvidVerifyError{SvidRejection::kNoCertificate, "peer presented no certificate"};
      }
      std::string detail = drain_ssl_errors();
      error_ = std::string(op) + ": " + (detail.empty() ? "TLS error " + std::to_string(err) : detail);
      return Io::kError;
    }
  }
}

TlsConnection::Io TlsConnection::handshake() {
  errno = 0;
  int ret = SSL_do_handshake(ssl_.get());
  if (ret == 1) return reverify_resumed_client() ? Io::kDone : Io::kError;
  Io io = classify(ret, "handshake");
  if (io == Io::kEof) {
    error_ = "handshake: peer closed the connection";
    return Io::kError;
  }
  if (io == Io::kError && verify_error_) error_ = "handshake: " + verify_error_->message;
  return io;
}

// BoringSSL runs the custom verify callback again on resumption only on clients
// (SSL_CTX_set_reverify_on_resume). A server resuming a session re-verifies the client chain stored
// in the session here: otherwise the connection would carry no peer identity (RBAC would see an
// unauthenticated peer, so ALLOW-by-identity refuses and DENY-by-identity lets it through), and a
// chain that stopped verifying since (expired, bundle rotated) would still be accepted.
bool TlsConnection::reverify_resumed_client() {
  if (!context_->server() || !context_->config().verifies_peer() || !SSL_session_reused(ssl_.get())) return true;
  if (peer_ || verify_error_) return !verify_error_;
  if (!peer_sent_certificates(ssl_.get()) && !context_->config().require_client_certificate) return true;
  PeerIdentity identity;
  SvidVerifyError error;
  if (!context_->verify_presented_chain(ssl_.get(), &identity, &error)) {
    error_ = "handshake: resumed session: " + error.message;
    verify_error_ = std::move(error);
    return false;
  }
  peer_ = std::move(identity);
  return true;
}

TlsConnection::Io TlsConnection::read(uint8_t* buf, size_t len, size_t* out_n) {
  errno = 0;
  int ret = SSL_read(ssl_.get(), buf, static_cast<int>(std::min<size_t>(len, INT_MAX)));
  if (ret > 0) {
    *out_n = static_cast<size_t>(ret);
    return Io::kDone;
  }
  return classify(ret, "read");
}

TlsConnection::Io TlsConnection::write(const uint8_t* buf, size_t len, size_t* out_n) {
  if (Io io = flush_output(); io != Io::kDone) return io;
  if (len == 0) {
    *out_n = 0;
    return Io::kDone;
  }
  // SSL_write seals one record per call (partial-write mode); gather several into one send().
  const size_t batch = std::min<size_t>(len, kMaxBatchPlaintext);
  size_t taken = 0;
  int ret = 1;
  errno = 0;
  socket_bio_.begin_batch();
  while (taken < batch && socket_bio_.batch_room() >= SocketBio::kMaxRecordBytes) {
    ret = SSL_write(ssl_.get(), buf + taken, static_cast<int>(batch - taken));
    if (ret <= 0) break;
    taken += static_cast<size_t>(ret);
  }
  if (!socket_bio_.end_batch()) {
    error_ = std::string("write: ") + std::strerror(errno);
    return Io::kError;
  }
  if (taken > 0) {
    *out_n = taken;
    return Io::kDone;
  }
  if (ret > 0) return Io::kWantWrite;  // no room for a record: nothing sealed, wait for the socket
  Io io = classify(ret, "write");
  return io == Io::kEof ? Io::kError : io;
}

TlsConnection::Io TlsConnection::flush_output() {
  int r = socket_bio_.flush_pending();
  if (r > 0) return Io::kDone;
  if (r == 0) return Io::kWantWrite;
  error_ = std::string("write: ") + std::strerror(errno);
  return Io::kError;
}

TlsConnection::Io TlsConnection::close_notify() {
  // SSL_shutdown sends our close_notify and returns 0 without waiting for the peer's (we never
  // do: the other direction may still be carrying data).
  errno = 0;
  int ret = SSL_shutdown(ssl_.get());
  if (ret >= 0) return Io::kDone;
  Io io = classify(ret, "close_notify");
  return io == Io::kEof ? Io::kDone : io;
}

void TlsConnection::use_session_cache(ClientSessionCache* cache) {
  session_cache_ = cache;
  if (SSL_SESSION* session = cache->get(context_)) SSL_set_session(ssl_.get(), session);
}

bool TlsConnection::store_session(SSL_SESSION* session) {
  if (session_cache_ == nullptr) return false;
  session_cache_->put(context_, bssl::UniquePtr<SSL_SESSION>(session));
  return true;
}

bool TlsConnection::session_reused() const { return SSL_session_reused(ssl_.get()) == 1; }

std::string TlsConnection::version() const { return SSL_get_version(ssl_.get()); }

std::string TlsConnection::cipher() const {
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl_.get());
  return c ? SSL_CIPHER_standard_name(c) : "";
}

std::string TlsConnection::alpn() const {
  const uint8_t* data = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl_.get(), &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

std::string TlsConnection::server_name() const {
  const char* name = SSL_get_servername(ssl_.get(), TLSEXT_NAMETYPE_host_name);
  return name ? name : "";
}

}  // namespace portcullis::mtls
