#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/stats.h"
#include "common/stats_macros.h"
#include "mtls/svid_store.h"

namespace portcullis::mtls {

// RevokedSerial is one revoked X.509-SVID: its serial number as hex (any case, leading zeros
// allowed: stored canonical) and when the certificate would have expired anyway (Unix seconds),
// after which the entry is dropped. spiffe_id is informational (logs, /revocations dumps).
struct RevokedSerial {
  std::string serial_hex;
  int64_t expires_at = 0;
  std::string spiffe_id;
};

// kMaxSerialHexDigits bounds a serial: RFC 5280 allows 20 octets; a few more digits tolerate
// encoders that keep a sign byte.
inline constexpr size_t kMaxSerialHexDigits = 48;

// canonical_serial_hex lowercases `hex` and strips leading zeros ("0" for zero); fails on an
// empty, non-hex or over-long value.
Result<std::string> canonical_serial_hex(std::string_view hex);

// RevocationSet is one immutable snapshot of the revoked serials, sorted by canonical serial so
// revoked() is a binary search that allocates nothing. Shared as `shared_ptr<const
// RevocationSet>` by every worker; never changed after it is built.
class RevocationSet {
 public:
  // create canonicalises, deduplicates (keeping the later expiry) and drops entries that expired
  // at or before `now`. Fails on the first malformed serial, naming it.
  static Result<std::shared_ptr<const RevocationSet>> create(std::vector<RevokedSerial> entries, uint64_t version,
                                                             int64_t now);
  static std::shared_ptr<const RevocationSet> empty();

  // revoked says whether `serial_hex` (as PeerIdentity::serial holds it: hex, any case, leading
  // zeros allowed) is in the set. Thread-safe, allocation-free.
  bool revoked(std::string_view serial_hex) const { return find(serial_hex) != nullptr; }
  const RevokedSerial* find(std::string_view serial_hex) const;
  size_t size() const { return entries_.size(); }
  bool empty_set() const { return entries_.empty(); }
  uint64_t version() const { return version_; }
  // entries are sorted by canonical serial.
  const std::vector<RevokedSerial>& entries() const { return entries_; }
  // earliest_expiry is the smallest expires_at (INT64_MAX when empty): when a prune has work.
  int64_t earliest_expiry() const { return earliest_expiry_; }

 private:
  RevocationSet(std::vector<RevokedSerial> entries, uint64_t version);
  std::vector<RevokedSerial> entries_;
  uint64_t version_;
  int64_t earliest_expiry_ = INT64_MAX;
};

// `revocation.` stats.
#define PORTCULLIS_REVOCATION_STATS(COUNTER, GAUGE) \
  COUNTER(connections_closed)                       \
  COUNTER(pruned)                                   \
  COUNTER(rejected_updates)                         \
  GAUGE(serials)                                    \
  COUNTER(updates)                                  \
  GAUGE(version)

struct RevocationStats {
  PORTCULLIS_REVOCATION_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static RevocationStats create(StatsStore& store) {
    StatScope scope{"revocation", "", ""};
    return RevocationStats{PORTCULLIS_REVOCATION_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
  }
};

// RevocationPublisher holds the current RevocationSet and tells watchers when it changes. The
// source (the agent's revocation stream, or a test) calls replace() with a full set or add() with
// new entries; either prunes expired ones and publishes a new snapshot with a higher version.
//
// Threading: current() is one atomic load, from any thread (TLS verification reads it once per
// handshake). Publishing (replace/add/prune) is serialised by an internal mutex, and watcher
// callbacks run on the publishing thread after the new snapshot is visible: like SvidStore
// watchers, they must only post work to their own loop and return. A malformed update keeps the
// current set, counts `revocation.rejected_updates` and returns the error.
class RevocationPublisher {
 public:
  using Callback = SvidStore::Callback;  // receives the version just published

  explicit RevocationPublisher(StatsStore& stats);

  std::shared_ptr<const RevocationSet> current() const { return set_.load(std::memory_order_acquire); }
  Status replace(std::vector<RevokedSerial> entries, int64_t now);
  Status add(std::vector<RevokedSerial> entries, int64_t now);
  // prune drops expired entries; publishes (and notifies) only when it dropped any. Returns how
  // many. Cheap when nothing expired (one comparison).
  size_t prune(int64_t now);
  // subscribe registers `callback` for every future publication; the handle ends it.
  SvidSubscription subscribe(Callback callback) { return watchers_.subscribe(std::move(callback)); }
  RevocationStats& stats() { return stats_; }

 private:
  Status publish_locked(std::vector<RevokedSerial> entries, int64_t now);

  RevocationStats stats_;
  std::mutex publish_mu_;
  std::atomic<std::shared_ptr<const RevocationSet>> set_;
  SvidWatchers watchers_;
};

}  // namespace portcullis::mtls
