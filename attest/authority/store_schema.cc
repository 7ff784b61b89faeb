#include "attest/authority/store_schema.h"

#include <string>

namespace portcullis::attest::authority {

const std::vector<std::string_view>& store_migrations() {
  // Selectors and DNS names are stored newline-joined (validation forbids whitespace in them), so
  // the duplicate rule (spiffe_id, parent_id, selectors) is one UNIQUE index.
  static const std::vector<std::string_view> kMigrations = {
      // 1: registration entries.
      R"sql(
        CREATE TABLE entries (
          id TEXT PRIMARY KEY,
          spiffe_id TEXT NOT NULL,
          parent_id TEXT NOT NULL,
          selectors TEXT NOT NULL,
          x509_svid_ttl INTEGER NOT NULL,
          jwt_svid_ttl INTEGER NOT NULL,
          dns_names TEXT NOT NULL,
          created_at INTEGER NOT NULL,
          revision INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE UNIQUE INDEX entries_registration ON entries (spiffe_id, parent_id, selectors);
      )sql",
      // 2: node attestation and issuance state. Join tokens are kept (used_at set) until they
      // expire, so a replayed token is reported as used rather than unknown.
      R"sql(
        CREATE TABLE join_tokens (
          token_sha256 TEXT PRIMARY KEY,
          token_id TEXT NOT NULL UNIQUE,
          expires_at INTEGER NOT NULL,
          used_at INTEGER
        ) WITHOUT ROWID;
        CREATE TABLE issued_svids (
          serial TEXT PRIMARY KEY,
          spiffe_id TEXT NOT NULL,
          entry_id TEXT NOT NULL,
          node_id TEXT NOT NULL,
          expires_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX issued_svids_node ON issued_svids (node_id);
        CREATE INDEX issued_svids_expiry ON issued_svids (expires_at);
        CREATE TABLE revocations (
          serial TEXT PRIMARY KEY,
          spiffe_id TEXT NOT NULL,
          expires_at INTEGER NOT NULL,
          revoked_at INTEGER NOT NULL,
          reason TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX revocations_expiry ON revocations (expires_at);
        CREATE TABLE kv (
          key TEXT PRIMARY KEY,
          value TEXT NOT NULL
        ) WITHOUT ROWID;
      )sql",
      // 3: evicted nodes. Kept forever (not pruned): an evicted node ID must never attest or
      // renew again, however long after its last SVID expired.
      R"sql(
        CREATE TABLE evicted_nodes (
          node_id TEXT PRIMARY KEY,
          evicted_at INTEGER NOT NULL,
          reason TEXT NOT NULL
        ) WITHOUT ROWID;
      )sql",
  };
  return kMigrations;
}

namespace {

Result<size_t> schema_version(SqliteDb& db) {
  auto text = db.query_text("PRAGMA user_version");
  if (!text.ok()) return text.error();
  long version = std::stol(*text);
  size_t known = store_migrations().size();
  if (version < 0 || static_cast<size_t>(version) > known) {
    return make_error(ErrorCode::kFailedPrecondition, "the store's schema version is " + *text +
                                                          " but this binary knows only up to " + std::to_string(known) +
                                                          "; run a newer portcullis or restore a backup");
  }
  return static_cast<size_t>(version);
}

}  // namespace

Status migrate_store(SqliteDb& db) {
  const auto& migrations = store_migrations();
  while (true) {
    // The version is read inside the write transaction: another process opening the same new
    // file at the same time has either applied this step already or waits for us.
    auto tx = Transaction::begin(db);
    if (!tx.ok()) return tx.error();
    auto version = schema_version(db);
    if (!version.ok()) return version.error();
    if (*version == migrations.size()) return tx->commit();
    Status s = db.exec(migrations[*version]);
    if (s.ok()) s = db.exec("PRAGMA user_version = " + std::to_string(*version + 1));
    if (s.ok()) s = tx->commit();
    if (!s.ok()) {
      return make_error(s.error().code,
                        "schema migration " + std::to_string(*version + 1) + " failed: " + s.error().message);
    }
  }
}

}  // namespace portcullis::attest::authority
