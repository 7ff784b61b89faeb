#include "mtls/client_session_cache.h"

#include <algorithm>

namespace portcullis::mtls {

SSL_SESSION* ClientSessionCache::get(const std::shared_ptr<const TlsContext>& context) const {
  for (const Entry& e : entries_) {
    if (e.context.lock() == context) return e.session.get();
  }
  return nullptr;
}

void ClientSessionCache::put(const std::shared_ptr<const TlsContext>& context, bssl::UniquePtr<SSL_SESSION> session) {
  // Drop entries whose context was replaced by a rotation.
  std::erase_if(entries_, [](const Entry& e) { return e.context.expired(); });
  for (Entry& e : entries_) {
    if (e.context.lock() == context) {
      e.session = std::move(session);
      return;
    }
  }
  entries_.push_back(Entry{context, std::move(session)});
}

}  // namespace portcullis::mtls
