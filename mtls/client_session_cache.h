#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <vector>

namespace portcullis::mtls {

class TlsContext;

// ClientSessionCache keeps the latest TLS session ticket per client context so the next upstream
// connection resumes instead of paying for a full handshake. Worker-local (one per event loop),
// so it takes no locks; a handful of entries, one per upstream TLS context.
class ClientSessionCache {
 public:
  // get returns a session to offer, or nullptr. The pointer stays valid until the next put.
  SSL_SESSION* get(const std::shared_ptr<const TlsContext>& context) const;
  void put(const std::shared_ptr<const TlsContext>& context, bssl::UniquePtr<SSL_SESSION> session);

 private:
  struct Entry {
    std::weak_ptr<const TlsContext> context;
    bssl::UniquePtr<SSL_SESSION> session;
  };
  std::vector<Entry> entries_;
};

}  // namespace portcullis::mtls
