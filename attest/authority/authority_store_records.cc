// AuthorityStore's node-attestation and issuance records: join tokens, issued SVIDs, revocations,
// key/value state and expiry pruning. Entries and opening live in authority_store.cc.
#include <algorithm>
#include <set>

#include "attest/authority/authority_store.h"
#include "common/digest.h"

namespace portcullis::attest::authority {
namespace {

Error invalid(std::string message) { return make_error(ErrorCode::kInvalidArgument, std::move(message)); }

bool is_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool valid_serial(std::string_view serial) { return !serial.empty() && serial.size() <= 64 && is_lower_hex(serial); }

}  // namespace

Result<JoinToken> AuthorityStore::create_join_token(std::chrono::seconds ttl) {
  if (ttl.count() <= 0 || ttl > options_.max_join_token_ttl) {
    return count(Result<JoinToken>(
        invalid("join token ttl must be from 1s to " + std::to_string(options_.max_join_token_ttl.count()) + "s")));
  }
  std::lock_guard lock(mu_);
  int64_t now = now_seconds();
  auto prune = db_->prepare("DELETE FROM join_tokens WHERE expires_at <= ?");
  if (!prune.ok()) return count(Result<JoinToken>(prune.error()));
  if (Status s = prune->bind(1, now).run(); !s.ok()) return count(Result<JoinToken>(s.error()));
  auto n = db_->query_text("SELECT COUNT(*) FROM join_tokens");
  if (!n.ok()) return count(Result<JoinToken>(n.error()));
  if (std::stoull(*n) >= options_.max_join_tokens) {
    return count(
        Result<JoinToken>(make_error(ErrorCode::kResourceExhausted, std::to_string(options_.max_join_tokens) +
                                                                        " join tokens are outstanding, the limit")));
  }
  JoinToken token{random_hex(32), random_hex(8), now + ttl.count()};
  auto stmt = db_->prepare("INSERT INTO join_tokens (token_sha256, token_id, expires_at) VALUES (?, ?, ?)");
  if (!stmt.ok()) return count(Result<JoinToken>(stmt.error()));
  if (Status s = stmt->bind(1, sha256_hex(token.token)).bind(2, token.token_id).bind(3, token.expires_at).run();
      !s.ok()) {
    return count(Result<JoinToken>(s.error()));
  }
  stats_.writes.inc();
  return token;
}

Result<std::string> AuthorityStore::consume_join_token(std::string_view token) {
  using R = Result<std::string>;
  if (token.size() != 64 || !is_lower_hex(token))
    return count(R(invalid("malformed join token (expected 64 lowercase hex characters)")));
  std::string hash = sha256_hex(token);
  std::lock_guard lock(mu_);
  int64_t now = now_seconds();
  {
    // One statement: the check and the claim cannot interleave with another consumer, in this
    // process (mutex) or another (SQLite's write lock).
    auto claim = db_->prepare(
        "UPDATE join_tokens SET used_at = ?2 WHERE token_sha256 = ?1 AND used_at IS NULL AND expires_at > ?2 "
        "RETURNING token_id");
    if (!claim.ok()) return count(R(claim.error()));
    auto row = claim->bind(1, hash).bind(2, now).step();
    if (!row.ok()) return count(R(row.error()));
    if (*row) {
      std::string id = claim->text(0);
      if (Status s = claim->run(); !s.ok()) return count(R(s.error()));
      stats_.writes.inc();
      stats_.join_tokens_consumed.inc();
      return id;
    }
  }
  auto look = db_->prepare("SELECT expires_at, used_at FROM join_tokens WHERE token_sha256 = ?");
  if (!look.ok()) return count(R(look.error()));
  auto row = look->bind(1, hash).step();
  if (!row.ok()) return count(R(row.error()));
  if (!*row) return count(R(make_error(ErrorCode::kNotFound, "unknown join token")));
  if (!look->is_null(1)) return count(R(make_error(ErrorCode::kPermissionDenied, "join token already used")));
  return count(R(make_error(ErrorCode::kPermissionDenied,
                            "join token expired " + std::to_string(now - look->int64(0)) + "s ago")));
}

Status AuthorityStore::record_issued(const IssuedSvid& svid) {
  if (!valid_serial(svid.serial)) {
    return count(Status(invalid("issued SVID serial must be 1 to 64 lowercase hex characters")));
  }
  std::lock_guard lock(mu_);
  auto stmt = db_->prepare(
      "INSERT OR REPLACE INTO issued_svids (serial, spiffe_id, entry_id, node_id, expires_at) VALUES (?,?,?,?,?)");
  if (!stmt.ok()) return count(Status(stmt.error()));
  Status s = stmt->bind(1, svid.serial)
                 .bind(2, svid.spiffe_id)
                 .bind(3, svid.entry_id)
                 .bind(4, svid.node_id)
                 .bind(5, svid.expires_at)
                 .run();
  if (s.ok()) stats_.writes.inc();
  return count(s);
}

namespace {

IssuedSvid issued_from_row(const Statement& s) {
  return IssuedSvid{s.text(0), s.text(1), s.text(2), s.text(3), s.int64(4)};
}

template <typename Row, typename Read>
Result<std::vector<Row>> collect(Statement& stmt, Read read) {
  std::vector<Row> out;
  while (true) {
    auto row = stmt.step();
    if (!row.ok()) return row.error();
    if (!*row) return out;
    out.push_back(read(stmt));
  }
}

}  // namespace

Result<std::optional<IssuedSvid>> AuthorityStore::issued_svid(std::string_view serial) const {
  std::lock_guard lock(mu_);
  auto stmt =
      db_->prepare("SELECT serial, spiffe_id, entry_id, node_id, expires_at FROM issued_svids WHERE serial = ?");
  if (!stmt.ok()) return count(Result<std::optional<IssuedSvid>>(stmt.error()));
  auto rows = collect<IssuedSvid>(stmt->bind(1, serial), issued_from_row);
  if (!rows.ok()) return count(Result<std::optional<IssuedSvid>>(rows.error()));
  if (rows->empty()) return std::optional<IssuedSvid>();
  return std::optional<IssuedSvid>(rows->front());
}

Result<std::vector<IssuedSvid>> AuthorityStore::issued_to_node(std::string_view node_id) const {
  std::lock_guard lock(mu_);
  auto stmt = db_->prepare(
      "SELECT serial, spiffe_id, entry_id, node_id, expires_at FROM issued_svids WHERE node_id = ? ORDER BY serial");
  if (!stmt.ok()) return count(Result<std::vector<IssuedSvid>>(stmt.error()));
  return count(collect<IssuedSvid>(stmt->bind(1, node_id), issued_from_row));
}

Result<std::vector<IssuedSvid>> AuthorityStore::issued_to_node(std::string_view node_id,
                                                               const std::vector<std::string>& serials) const {
  using R = Result<std::vector<IssuedSvid>>;
  if (serials.size() > options_.max_revocations_per_call) {
    return count(
        R(make_error(ErrorCode::kResourceExhausted, std::to_string(serials.size()) + " serials exceed the limit of " +
                                                        std::to_string(options_.max_revocations_per_call))));
  }
  std::vector<std::string> sorted = serials;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::lock_guard lock(mu_);
  auto stmt = db_->prepare(
      "SELECT serial, spiffe_id, entry_id, node_id, expires_at FROM issued_svids WHERE serial = ? AND node_id = ?");
  if (!stmt.ok()) return count(R(stmt.error()));
  std::vector<IssuedSvid> out;
  for (const auto& serial : sorted) {
    auto rows = collect<IssuedSvid>(stmt->bind(1, serial).bind(2, node_id), issued_from_row);
    if (!rows.ok()) return count(R(rows.error()));
    out.insert(out.end(), rows->begin(), rows->end());
  }
  return out;
}

Result<size_t> AuthorityStore::add_revocations(const std::vector<Revocation>& revocations) {
  using R = Result<size_t>;
  if (revocations.size() > options_.max_revocations_per_call) {
    return count(R(make_error(ErrorCode::kResourceExhausted, std::to_string(revocations.size()) +
                                                                 " revocations exceed the limit of " +
                                                                 std::to_string(options_.max_revocations_per_call))));
  }
  for (const auto& r : revocations) {
    if (!valid_serial(r.serial)) {
      return count(
          R(invalid("revocation serial '" + r.serial.substr(0, 80) + "' must be 1 to 64 lowercase hex characters")));
    }
  }
  std::lock_guard lock(mu_);
  auto tx = Transaction::begin(*db_);
  if (!tx.ok()) return count(R(tx.error()));
  auto stmt = db_->prepare(
      "INSERT OR IGNORE INTO revocations (serial, spiffe_id, expires_at, revoked_at, reason) VALUES (?,?,?,?,?)");
  if (!stmt.ok()) return count(R(stmt.error()));
  size_t added = 0;
  for (const auto& r : revocations) {
    Status s = stmt->bind(1, r.serial)
                   .bind(2, r.spiffe_id)
                   .bind(3, r.expires_at)
                   .bind(4, r.revoked_at)
                   .bind(5, r.reason)
                   .run();
    if (!s.ok()) return count(R(s.error()));
    added += static_cast<size_t>(db_->changes());
  }
  if (Status s = tx->commit(); !s.ok()) return count(R(s.error()));
  stats_.writes.inc();
  stats_.revocations_added.inc(added);
  return added;
}

Result<std::vector<Revocation>> AuthorityStore::live_revocations(int64_t now) {
  using R = Result<std::vector<Revocation>>;
  std::lock_guard lock(mu_);
  auto prune = db_->prepare("DELETE FROM revocations WHERE expires_at <= ?");
  if (!prune.ok()) return count(R(prune.error()));
  if (Status s = prune->bind(1, now).run(); !s.ok()) return count(R(s.error()));
  auto stmt = db_->prepare("SELECT serial, spiffe_id, expires_at, revoked_at, reason FROM revocations ORDER BY serial");
  if (!stmt.ok()) return count(R(stmt.error()));
  return count(collect<Revocation>(*stmt, [](const Statement& s) {
    return Revocation{s.text(0), s.text(1), s.int64(2), s.int64(3), s.text(4)};
  }));
}

Result<bool> AuthorityStore::is_revoked(std::string_view serial) const {
  std::lock_guard lock(mu_);
  auto stmt = db_->prepare("SELECT 1 FROM revocations WHERE serial = ?");
  if (!stmt.ok()) return count(Result<bool>(stmt.error()));
  return count(stmt->bind(1, serial).step());
}

Status AuthorityStore::load_evicted() {
  std::lock_guard lock(mu_);
  auto stmt = db_->prepare("SELECT node_id FROM evicted_nodes");
  if (!stmt.ok()) return stmt.error();
  auto ids = collect<std::string>(*stmt, [](const Statement& s) { return s.text(0); });
  if (!ids.ok()) return ids.error();
  evicted_.store(std::make_shared<const std::set<std::string, std::less<>>>(ids->begin(), ids->end()),
                 std::memory_order_release);
  return {};
}

Status AuthorityStore::evict_node(std::string_view node_id, std::string_view reason) {
  // Bounded like selectors: the ID is a SPIFFE ID the caller validated; the bound keeps a
  // careless caller from storing megabytes.
  if (node_id.empty() || node_id.size() > options_.entry_limits.max_selector_bytes ||
      reason.size() > options_.entry_limits.max_selector_bytes) {
    return count(Status(invalid("evicted node id must be 1 to " +
                                std::to_string(options_.entry_limits.max_selector_bytes) +
                                " bytes, and its reason at most that")));
  }
  std::lock_guard lock(mu_);
  auto stmt = db_->prepare("INSERT OR IGNORE INTO evicted_nodes (node_id, evicted_at, reason) VALUES (?, ?, ?)");
  if (!stmt.ok()) return count(Status(stmt.error()));
  if (Status s = stmt->bind(1, node_id).bind(2, now_seconds()).bind(3, reason).run(); !s.ok()) return count(s);
  if (db_->changes() == 0) return {};  // evicted before: the first record stands
  stats_.writes.inc();
  stats_.nodes_evicted.inc();
  auto next = std::make_shared<std::set<std::string, std::less<>>>(*evicted_.load(std::memory_order_acquire));
  next->emplace(node_id);
  evicted_.store(std::move(next), std::memory_order_release);
  return {};
}

bool AuthorityStore::is_evicted(std::string_view node_id) const {
  auto snapshot = evicted_.load(std::memory_order_acquire);
  return snapshot && snapshot->contains(node_id);
}

Result<PruneResult> AuthorityStore::prune_expired(int64_t now) {
  using R = Result<PruneResult>;
  std::lock_guard lock(mu_);
  auto tx = Transaction::begin(*db_);
  if (!tx.ok()) return count(R(tx.error()));
  PruneResult result;
  const std::pair<const char*, size_t*> steps[] = {
      {"DELETE FROM join_tokens WHERE expires_at <= ?", &result.join_tokens},
      {"DELETE FROM issued_svids WHERE expires_at <= ?", &result.issued_svids},
      {"DELETE FROM revocations WHERE expires_at <= ?", &result.revocations},
  };
  for (const auto& [sql, out] : steps) {
    auto stmt = db_->prepare(sql);
    if (!stmt.ok()) return count(R(stmt.error()));
    if (Status s = stmt->bind(1, now).run(); !s.ok()) return count(R(s.error()));
    *out = static_cast<size_t>(db_->changes());
  }
  if (Status s = tx->commit(); !s.ok()) return count(R(s.error()));
  return result;
}

Result<std::optional<std::string>> AuthorityStore::get_state(std::string_view key) const {
  using R = Result<std::optional<std::string>>;
  std::lock_guard lock(mu_);
  auto stmt = db_->prepare("SELECT value FROM kv WHERE key = ?");
  if (!stmt.ok()) return count(R(stmt.error()));
  auto row = stmt->bind(1, key).step();
  if (!row.ok()) return count(R(row.error()));
  if (!*row) return std::optional<std::string>();
  return std::optional<std::string>(stmt->text(0));
}

Status AuthorityStore::set_state(std::string_view key, std::string_view value) {
  std::lock_guard lock(mu_);
  auto stmt = db_->prepare("INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2");
  if (!stmt.ok()) return count(Status(stmt.error()));
  Status s = stmt->bind(1, key).bind(2, value).run();
  if (s.ok()) stats_.writes.inc();
  return count(s);
}

Result<uint64_t> AuthorityStore::next_bundle_sequence() {
  using R = Result<uint64_t>;
  std::lock_guard lock(mu_);
  auto stmt = db_->prepare(
      "INSERT INTO kv (key, value) VALUES ('bundle_sequence', '1') "
      "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING value");
  if (!stmt.ok()) return count(R(stmt.error()));
  auto row = stmt->step();
  if (!row.ok()) return count(R(row.error()));
  uint64_t value = std::stoull(stmt->text(0));
  if (Status s = stmt->run(); !s.ok()) return count(R(s.error()));
  stats_.writes.inc();
  return value;
}

}  // namespace portcullis::attest::authority
