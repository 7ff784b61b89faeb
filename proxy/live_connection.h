#pragma once

#include <cstddef>

#include "mtls/peer_identity.h"
#include "mtls/revocation_set.h"

namespace portcullis::proxy {

// LiveConnection is how a worker reaches its open connections: to close them at the end of a
// drain, and to close those authenticated with a certificate that was revoked since. Connections
// link themselves into their worker's list on start and unlink on destruction; all of it happens
// on the worker's thread.
class LiveConnection {
 public:
  // VerifiedPeers are the identities this connection's TLS sides verified: the downstream client
  // and the upstream server. Null where a side is plaintext, has not verified yet, or presented
  // nothing. Valid until the connection's next state change on its worker.
  struct VerifiedPeers {
    const mtls::PeerIdentity* downstream = nullptr;
    const mtls::PeerIdentity* upstream = nullptr;
  };

  virtual ~LiveConnection() = default;
  virtual void close_now() = 0;
  virtual VerifiedPeers verified_peers() const { return {}; }
  // close_revoked closes the connection because `peer` (one of verified_peers()) presented
  // `revoked`; implementations write their audit record, then close_now().
  virtual void close_revoked(const mtls::PeerIdentity& peer, const mtls::RevokedSerial& revoked) { close_now(); }

 private:
  friend class LiveConnectionList;
  LiveConnection* prev_ = nullptr;
  LiveConnection* next_ = nullptr;
};

// LiveConnectionList is an intrusive list: linking allocates nothing. Worker-local.
class LiveConnectionList {
 public:
  void add(LiveConnection* c) {
    c->prev_ = nullptr;
    c->next_ = head_;
    if (head_) head_->prev_ = c;
    head_ = c;
    ++size_;
  }
  void remove(LiveConnection* c) {
    if (c->prev_) c->prev_->next_ = c->next_;
    else head_ = c->next_;
    if (c->next_) c->next_->prev_ = c->prev_;
    c->prev_ = c->next_ = nullptr;
    --size_;
  }
  size_t size() const { return size_; }
  // close_all closes every connection; each may unlink itself (now or later) while we walk.
  void close_all() {
    for (LiveConnection* c = head_; c != nullptr;) {
      LiveConnection* next = c->next_;
      c->close_now();
      c = next;
    }
  }
  // close_revoked closes every connection whose downstream or upstream peer presented a serial in
  // `set` and returns how many. One binary search per verified peer; allocates nothing itself.
  size_t close_revoked(const mtls::RevocationSet& set) {
    if (set.empty_set()) return 0;
    size_t closed = 0;
    for (LiveConnection* c = head_; c != nullptr;) {
      LiveConnection* next = c->next_;
      LiveConnection::VerifiedPeers peers = c->verified_peers();
      for (const mtls::PeerIdentity* peer : {peers.downstream, peers.upstream}) {
        if (peer == nullptr) continue;
        if (const mtls::RevokedSerial* hit = set.find(peer->serial)) {
          c->close_revoked(*peer, *hit);
          ++closed;
          break;
        }
      }
      c = next;
    }
    return closed;
  }

 private:
  LiveConnection* head_ = nullptr;
  size_t size_ = 0;
};

}  // namespace portcullis::proxy
