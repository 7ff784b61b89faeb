#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/result.h"
#include "mtls/client_session_cache.h"
#include "mtls/peer_identity.h"
#include "mtls/socket_bio.h"
#include "mtls/tls_context.h"
#include "mtls/x509_svid_verifier.h"

namespace portcullis::mtls {

// TlsConnection runs TLS over a non-blocking socket fd it does not own: the caller waits for
// readiness and calls again when told kWantRead/kWantWrite (reactor style; the fd is read and written
// through a SocketBio that batches records into large socket calls). Holds its context snapshot for
// life. One thread at a time.
class TlsConnection {
 public:
  enum class Io {
    kDone,       // progress was made (or the handshake finished)
    kWantRead,   // call again when the fd is readable
    kWantWrite,  // call again when the fd is writable
    kEof,        // the peer closed its sending side (close_notify, or a bare FIN)
    kError,      // fatal: see error()
  };

  // create makes the SSL for `fd`; for clients `sni` is sent as server_name when non-empty.
  static Result<std::unique_ptr<TlsConnection>> create(std::shared_ptr<const TlsContext> context, int fd,
                                                       const std::string& sni = "");
  ~TlsConnection();

  Io handshake();
  // read/write move up to `len` bytes; *out_n says how many on kDone.
  Io read(uint8_t* buf, size_t len, size_t* out_n);
  // write seals up to 64 KiB into records that leave in one send(). It may take the bytes while part
  // of their ciphertext is still held (has_pending_output): flush_output() sends it, and the caller
  // must not consider the data written, nor half-close, until that reports kDone.
  Io write(const uint8_t* buf, size_t len, size_t* out_n);
  // skip_read_after_short_read is for callers whose wait after kWantRead reports data that is
  // already queued (epoll re-armed with EPOLL_CTL_MOD, as Asio's async_wait does): a socket read
  // that returned less than asked then means the queue is empty, and the next read answers
  // kWantRead without the recv() that would only fail with EAGAIN. Off by default.
  void skip_read_after_short_read(bool on) { socket_bio_.set_skip_read_after_short_read(on); }
  bool has_pending_output() const { return socket_bio_.has_pending_output(); }
  // flush_output: kDone when nothing is held any more, kWantWrite, or kError.
  Io flush_output();
  // close_notify sends our close_notify (our half-close); reading may go on afterwards. kDone once
  // it is on the wire; kWantWrite when the socket is full (call again when writable); kError.
  Io close_notify();
  // use_session_cache makes a client offer the cached session and store the tickets the server
  // sends. The cache must outlive the connection (both live on one worker).
  void use_session_cache(ClientSessionCache* cache);
  bool session_reused() const;
  // store_session is called by the context's new-session callback; true if it took the session.
  bool store_session(SSL_SESSION* session);

  const TlsContext& context() const { return *context_; }
  // peer is set once a presented certificate verified; verify_error when it did not.
  const std::optional<PeerIdentity>& peer() const { return peer_; }
  const std::optional<SvidVerifyError>& verify_error() const { return verify_error_; }
  const std::string& error() const { return error_; }
  std::string version() const;
  std::string cipher() const;
  std::string alpn() const;
  std::string server_name() const;  // SNI the client sent (server side)

  // record_verification is called by the context's verify callback during the handshake.
  void record_verification(std::optional<PeerIdentity> peer, std::optional<SvidVerifyError> error);

 private:
  TlsConnection(std::shared_ptr<const TlsContext> context, int fd);
  Io classify(int ret, const char* op);
  bool reverify_resumed_client();

  std::shared_ptr<const TlsContext> context_;
  SocketBio socket_bio_;  // before ssl_: the SSL's BIO points here
  bssl::UniquePtr<SSL> ssl_;
  ClientSessionCache* session_cache_ = nullptr;
  std::optional<PeerIdentity> peer_;
  std::optional<SvidVerifyError> verify_error_;
  std::string error_;
};

}  // namespace portcullis::mtls
