#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "attest/authority/entry_matcher.h"
#include "attest/authority/registration_entry.h"
#include "attest/authority/sqlite_db.h"
#include "common/result.h"
#include "common/stats.h"
#include "common/stats_macros.h"

namespace portcullis::attest::authority {

// `authority_store.` stats. `rejected` counts requests refused for their content (invalid, not
// found, duplicate, over a limit, bad or used join token); `failures` counts SQLite errors.
#define PORTCULLIS_AUTHORITY_STORE_STATS(COUNTER, GAUGE) \
  GAUGE(entries)                                         \
  COUNTER(failures)                                      \
  COUNTER(join_tokens_consumed)                          \
  COUNTER(nodes_evicted)                                 \
  COUNTER(rejected)                                      \
  COUNTER(revocations_added)                             \
  COUNTER(writes)

struct AuthorityStoreStats {
  PORTCULLIS_AUTHORITY_STORE_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static AuthorityStoreStats create(StatsStore& store) {
    StatScope scope{"authority_store", "", ""};
    return AuthorityStoreStats{PORTCULLIS_AUTHORITY_STORE_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
  }
};

// AuthorityStoreOptions are the store's limits; the defaults suit a single authority.
struct AuthorityStoreOptions {
  // trust_domain, when set, is the only trust domain entries' spiffe_id/parent_id may name.
  std::string trust_domain;
  EntryLimits entry_limits;
  size_t max_entries = 100000;
  size_t max_join_tokens = 10000;  // unexpired, unused or used, outstanding at once
  std::chrono::seconds max_join_token_ttl{7 * 24 * 3600};
  size_t max_revocations_per_call = 10000;
  std::chrono::milliseconds busy_timeout{5000};  // another process holding the write lock
  // clock is the time source for created_at, token expiry and pruning; tests simulate it.
  std::function<std::chrono::system_clock::time_point()> clock = [] { return std::chrono::system_clock::now(); };
};

// JoinToken is a freshly created one-time node attestation token. `token` is the secret (only its
// SHA-256 is stored); `token_id` is public and names the node (spiffe://<td>/node/join_token/<id>).
struct JoinToken {
  std::string token;
  std::string token_id;
  int64_t expires_at = 0;  // Unix seconds
};

// IssuedSvid records an X.509-SVID the authority signed, so a node can revoke only its own serials
// and revocations can name the certificate's expiry. entry_id is empty for node SVIDs.
struct IssuedSvid {
  std::string serial, spiffe_id, entry_id, node_id;
  int64_t expires_at = 0;
  bool operator==(const IssuedSvid&) const = default;
};

// Revocation is a revoked serial, kept until the certificate would have expired anyway.
struct Revocation {
  std::string serial, spiffe_id;
  int64_t expires_at = 0, revoked_at = 0;
  std::string reason;
  bool operator==(const Revocation&) const = default;
};

// StoreSettings is what the store's connection runs with, as SQLite reports it (PRAGMA values as
// text: synchronous "1" is NORMAL), for diagnostics and tests.
struct StoreSettings {
  std::string journal_mode, synchronous, foreign_keys, busy_timeout_ms, schema_version;
};

// SeedResult counts what seed_entries did.
struct SeedResult {
  size_t created = 0, updated = 0, unchanged = 0;
};

// PruneResult counts what prune_expired removed.
struct PruneResult {
  size_t join_tokens = 0, issued_svids = 0, revocations = 0;
};

using EntriesSnapshot = std::shared_ptr<const std::vector<RegistrationEntry>>;
using EvictedSnapshot = std::shared_ptr<const std::set<std::string, std::less<>>>;

// AuthorityStore is the attestation authority's durable state in one SQLite file: registration
// entries, join tokens (hashed), issued SVIDs, revocations and small key/value state.
//
// Durability: WAL journal with synchronous=NORMAL. A commit is in the WAL (in the OS page cache)
// when it returns, so killing the process at any point (kill -9, crash) loses nothing committed;
// only an OS crash or power loss can drop the last transactions, never corrupt the file. That is
// the trade SPIRE and most SQLite servers make: FULL would fsync every write.
//
// Threading: every method is thread-safe; writes and database reads are serialized on one
// connection by a mutex. entries() and matcher() need no lock: they return the immutable snapshot
// republished after every entry write, which issuance matches against.
//
// Failures: bad input → kInvalidArgument, unknown id → kNotFound, duplicate registration →
// kAlreadyExists, over a limit → kResourceExhausted, all counted in `rejected`; SQLite errors →
// kIo/kUnavailable, counted in `failures`. A failed write changes nothing.
class AuthorityStore {
 public:
  // open opens or creates the store at `path`: the parent directory is created 0700 if missing,
  // the file 0600, the schema migrated to the newest version. Refuses a file whose schema is newer
  // than this binary (kFailedPrecondition) or that is not an SQLite database.
  static Result<std::unique_ptr<AuthorityStore>> open(const std::string& path, StatsStore& stats,
                                                      AuthorityStoreOptions options = {});
  ~AuthorityStore();

  // Registration entries. create_entry assigns the id (unless a valid one is given), created_at and
  // revision 1. update_entry replaces every field of the entry with `entry.id` except created_at,
  // bumps the revision, and fails with kFailedPrecondition when `entry.revision` is non-zero and
  // not the stored one (optimistic concurrency for read-modify-write admin tools).
  Result<RegistrationEntry> create_entry(RegistrationEntry entry);
  Result<RegistrationEntry> update_entry(RegistrationEntry entry);
  Status delete_entry(std::string_view id);
  Result<RegistrationEntry> get_entry(std::string_view id) const;
  std::vector<RegistrationEntry> list_entries() const { return *entries(); }
  // entries is the current immutable snapshot, sorted by id.
  EntriesSnapshot entries() const { return matcher()->entries(); }
  // matcher is the current snapshot with its match index: what the issuance path should use.
  std::shared_ptr<const EntryMatcher> matcher() const { return matcher_.load(std::memory_order_acquire); }
  // match: see match_entries (registration_entry.h); a linear scan, for callers holding only a
  // vector. EntryMatcher::match gives the same answer faster.
  static std::vector<const RegistrationEntry*> match(const std::vector<RegistrationEntry>& entries,
                                                     std::string_view node_id,
                                                     const std::vector<std::string>& selectors) {
    return match_entries(entries, node_id, selectors);
  }
  // seed_entries upserts `entries` in one transaction: an entry registering the same thing as a
  // stored one (same_registration) updates it only if its TTLs or DNS names differ, otherwise it
  // is left alone, so re-seeding on every start is idempotent. Stored entries not in `entries`
  // stay. All-or-nothing: any invalid entry fails the whole seed.
  Result<SeedResult> seed_entries(std::vector<RegistrationEntry> entries);

  // Join tokens. create_join_token returns a 256-bit secret valid for `ttl`. consume_join_token
  // accepts it once: kNotFound for an unknown token, kPermissionDenied for an expired or already
  // used one. Returns the token id.
  Result<JoinToken> create_join_token(std::chrono::seconds ttl);
  Result<std::string> consume_join_token(std::string_view token);

  // Issued SVIDs. record_issued overwrites a record with the same serial.
  Status record_issued(const IssuedSvid& svid);
  Result<std::optional<IssuedSvid>> issued_svid(std::string_view serial) const;
  Result<std::vector<IssuedSvid>> issued_to_node(std::string_view node_id) const;
  // issued_to_node(node, serials) returns those of `serials` issued to `node_id` (the ones that
  // node may revoke), in serial order.
  Result<std::vector<IssuedSvid>> issued_to_node(std::string_view node_id,
                                                 const std::vector<std::string>& serials) const;

  // Revocations. add_revocations is idempotent by serial (a repeated serial keeps its first
  // record) and returns how many were new. live_revocations first deletes those whose certificate
  // has expired by `now` (Unix seconds), then returns the rest by serial.
  Result<size_t> add_revocations(const std::vector<Revocation>& revocations);
  Result<std::vector<Revocation>> live_revocations(int64_t now);
  Result<bool> is_revoked(std::string_view serial) const;

  // Evicted nodes. evict_node records `node_id` as evicted (idempotent: a repeat keeps the first
  // record and succeeds). is_evicted reads an immutable snapshot, reloaded on open and
  // republished after every eviction, so the per-call node check takes no lock. An eviction is
  // never pruned.
  Status evict_node(std::string_view node_id, std::string_view reason);
  bool is_evicted(std::string_view node_id) const;

  // prune_expired deletes join tokens, issued-SVID records and revocations past their expiry.
  Result<PruneResult> prune_expired(int64_t now);

  // Small key/value state of the authority (bundle sequence number, CA rotation state).
  Result<std::optional<std::string>> get_state(std::string_view key) const;
  Status set_state(std::string_view key, std::string_view value);
  // next_bundle_sequence atomically increments and returns the `bundle_sequence` counter (1 first).
  Result<uint64_t> next_bundle_sequence();

  Result<StoreSettings> settings() const;
  // integrity_check runs SQLite's full integrity check; ok when the file is sound.
  Status integrity_check() const;

  const AuthorityStoreOptions& options() const { return options_; }

 private:
  AuthorityStore(std::unique_ptr<SqliteDb> db, AuthorityStoreOptions options, AuthorityStoreStats stats);
  int64_t now_seconds() const;
  Status load_entries();
  Status load_evicted();
  void publish(std::vector<RegistrationEntry> entries);
  Status insert_entry(const RegistrationEntry& entry);
  Status replace_entry(const RegistrationEntry& entry);
  Result<RegistrationEntry> prepare_new(RegistrationEntry entry, size_t stored,
                                        const std::function<bool(const std::string&)>& id_taken) const;
  // count records a failed result in the stats: failures for SQLite errors, rejected for the rest.
  template <typename T>
  T count(T result) const {
    if (!result.ok()) {
      ErrorCode c = result.error().code;
      bool db_error = c == ErrorCode::kIo || c == ErrorCode::kUnavailable || c == ErrorCode::kInternal;
      (db_error ? stats_.failures : stats_.rejected).inc();
    }
    return result;
  }

  mutable std::mutex mu_;
  std::unique_ptr<SqliteDb> db_;  // guarded by mu_
  AuthorityStoreOptions options_;
  AuthorityStoreStats stats_;
  std::atomic<std::shared_ptr<const EntryMatcher>> matcher_;
  std::atomic<EvictedSnapshot> evicted_;
};

}  // namespace portcullis::attest::authority
