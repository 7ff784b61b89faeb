#include "attest/authority/authority_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <unordered_set>

#include "attest/authority/store_schema.h"
#include "common/digest.h"

namespace portcullis::attest::authority {
namespace {

constexpr char kEntryColumns[] =
    "id, spiffe_id, parent_id, selectors, x509_svid_ttl, jwt_svid_ttl, dns_names, created_at, revision";

Error invalid(std::string message) { return make_error(ErrorCode::kInvalidArgument, std::move(message)); }

// Selectors and DNS names never contain whitespace (validated), so '\n' joins them unambiguously.
std::string join_lines(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out.push_back('\n');
    out += s;
  }
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    out.emplace_back(text, start, nl - start);
    start = nl + 1;
  }
  return out;
}

RegistrationEntry entry_from_row(const Statement& s) {
  RegistrationEntry e;
  e.id = s.text(0);
  e.spiffe_id = s.text(1);
  e.parent_id = s.text(2);
  e.selectors = split_lines(s.text(3));
  e.x509_svid_ttl = std::chrono::seconds(s.int64(4));
  e.jwt_svid_ttl = std::chrono::seconds(s.int64(5));
  e.dns_names = split_lines(s.text(6));
  e.created_at = s.int64(7);
  e.revision = s.int64(8);
  return e;
}

Statement& bind_entry(Statement& s, const RegistrationEntry& e) {
  return s.bind(1, e.id)
      .bind(2, e.spiffe_id)
      .bind(3, e.parent_id)
      .bind(4, join_lines(e.selectors))
      .bind(5, static_cast<int64_t>(e.x509_svid_ttl.count()))
      .bind(6, static_cast<int64_t>(e.jwt_svid_ttl.count()))
      .bind(7, join_lines(e.dns_names))
      .bind(8, e.created_at)
      .bind(9, e.revision);
}

bool is_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// prepare_file makes the directory (0700, if missing) and the file (0600) before SQLite opens it,
// so the database is never readable by others, not even for a moment. SQLite creates the -wal and
// -shm files with the main file's mode.
Status prepare_file(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec)) {
      std::filesystem::create_directories(dir.parent_path().empty() ? dir : dir.parent_path(), ec);
      if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        return make_error(ErrorCode::kIo, "cannot create directory " + dir.string() + ": " + std::strerror(errno));
      }
    } else if (!std::filesystem::is_directory(dir, ec)) {
      return make_error(ErrorCode::kIo, dir.string() + " is not a directory");
    }
  }
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return make_error(ErrorCode::kIo, "cannot open " + path + ": " + std::strerror(errno));
  int rc = ::fchmod(fd, 0600);
  int err = errno;
  ::close(fd);
  if (rc != 0) return make_error(ErrorCode::kIo, "cannot chmod 0600 " + path + ": " + std::strerror(err));
  return {};
}

Status configure_connection(SqliteDb& db, std::chrono::milliseconds busy_timeout) {
  if (Status s = db.exec("PRAGMA busy_timeout = " + std::to_string(busy_timeout.count())); !s.ok()) return s;
  auto mode = db.query_text("PRAGMA journal_mode = WAL");
  if (!mode.ok()) return mode.error();
  if (*mode != "wal") return make_error(ErrorCode::kIo, "cannot switch the store to WAL mode (got '" + *mode + "')");
  if (Status s = db.exec("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON"); !s.ok()) return s;
  return {};
}

}  // namespace

template <typename T>
T AuthorityStore::count(T result) const {
  if (!result.ok()) {
    ErrorCode c = result.error().code;
    bool db_error = c == ErrorCode::kIo || c == ErrorCode::kUnavailable || c == ErrorCode::kInternal;
    (db_error ? stats_.failures : stats_.rejected).inc();
  }
  return result;
}

Result<std::unique_ptr<AuthorityStore>> AuthorityStore::open(const std::string& path, StatsStore& stats,
                                                             AuthorityStoreOptions options) {
  auto fail = [&](const Error& e) { return make_error(e.code, "authority store " + path + ": " + e.message); };
  if (Status s = prepare_file(path); !s.ok()) return fail(s.error());
  auto db = SqliteDb::open(path);
  if (!db.ok()) return fail(db.error());
  if (Status s = configure_connection(**db, options.busy_timeout); !s.ok()) return fail(s.error());
  if (Status s = migrate_store(**db); !s.ok()) return fail(s.error());
  std::unique_ptr<AuthorityStore> store(
      new AuthorityStore(std::move(db.value()), std::move(options), AuthorityStoreStats::create(stats)));
  if (Status s = store->load_entries(); !s.ok()) return fail(s.error());
  return store;
}

AuthorityStore::AuthorityStore(std::unique_ptr<SqliteDb> db, AuthorityStoreOptions options, AuthorityStoreStats stats)
    : db_(std::move(db)), options_(std::move(options)), stats_(stats) {}

AuthorityStore::~AuthorityStore() = default;

int64_t AuthorityStore::now_seconds() const {
  return std::chrono::duration_cast<std::chrono::seconds>(options_.clock().time_since_epoch()).count();
}

Status AuthorityStore::load_entries() {
  std::lock_guard lock(mu_);
  auto stmt = db_->prepare(std::string("SELECT ") + kEntryColumns + " FROM entries ORDER BY id");
  if (!stmt.ok()) return stmt.error();
  std::vector<RegistrationEntry> entries;
  while (true) {
    auto row = stmt->step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    entries.push_back(entry_from_row(*stmt));
  }
  publish(std::move(entries));
  return {};
}

void AuthorityStore::publish(std::vector<RegistrationEntry> entries) {
  stats_.entries.set(static_cast<int64_t>(entries.size()));
  entries_.store(std::make_shared<const std::vector<RegistrationEntry>>(std::move(entries)), std::memory_order_release);
}

Status AuthorityStore::insert_entry(const RegistrationEntry& e) {
  auto stmt = db_->prepare(std::string("INSERT INTO entries (") + kEntryColumns + ") VALUES (?,?,?,?,?,?,?,?,?)");
  if (!stmt.ok()) return stmt.error();
  return bind_entry(*stmt, e).run();
}

Status AuthorityStore::replace_entry(const RegistrationEntry& e) {
  auto stmt = db_->prepare(
      "UPDATE entries SET spiffe_id = ?2, parent_id = ?3, selectors = ?4, x509_svid_ttl = ?5, jwt_svid_ttl = ?6, "
      "dns_names = ?7, created_at = ?8, revision = ?9 WHERE id = ?1");
  if (!stmt.ok()) return stmt.error();
  return bind_entry(*stmt, e).run();
}

// prepare_new validates a new entry (not its duplicates: callers check those their own way) and
// assigns its id, created_at and revision.
Result<RegistrationEntry> AuthorityStore::prepare_new(RegistrationEntry entry, size_t stored,
                                                      const std::function<bool(const std::string&)>& id_taken) const {
  if (Status s = normalize_entry(entry, options_.entry_limits, options_.trust_domain); !s.ok()) return s.error();
  if (stored >= options_.max_entries) {
    return make_error(ErrorCode::kResourceExhausted,
                      "the store holds the maximum of " + std::to_string(options_.max_entries) + " entries");
  }
  if (entry.id.empty()) {
    do entry.id = random_hex(16);
    while (id_taken(entry.id));
  } else if (Status s = validate_entry_id(entry.id); !s.ok()) {
    return make_error(ErrorCode::kInvalidArgument, "id: " + s.error().message);
  } else if (id_taken(entry.id)) {
    return make_error(ErrorCode::kAlreadyExists, "an entry with id " + entry.id + " exists");
  }
  entry.created_at = now_seconds();
  entry.revision = 1;
  return entry;
}

Result<RegistrationEntry> AuthorityStore::create_entry(RegistrationEntry entry) {
  std::lock_guard lock(mu_);
  auto current = entries();
  if (Status s = normalize_entry(entry, options_.entry_limits, options_.trust_domain); !s.ok()) {
    return count(Result<RegistrationEntry>(s.error()));
  }
  for (const auto& e : *current) {
    if (same_registration(e, entry)) {
      return count(Result<RegistrationEntry>(make_error(ErrorCode::kAlreadyExists, "entry " + e.id + " already registers " +
                                                            entry.spiffe_id + " with the same parent_id and selectors")));
    }
  }
  auto by_id = [&](const std::string& id) {
    auto it = std::lower_bound(current->begin(), current->end(), id,
                               [](const RegistrationEntry& e, const std::string& key) { return e.id < key; });
    return it != current->end() && it->id == id;
  };
  auto prepared = count(prepare_new(std::move(entry), current->size(), by_id));
  if (!prepared.ok()) return prepared;
  if (Status s = count(insert_entry(*prepared)); !s.ok()) return s.error();
  stats_.writes.inc();
  std::vector<RegistrationEntry> next = *current;
  auto at = std::lower_bound(next.begin(), next.end(), prepared->id,
                             [](const RegistrationEntry& e, const std::string& id) { return e.id < id; });
  next.insert(at, *prepared);
  publish(std::move(next));
  return prepared;
}

Result<RegistrationEntry> AuthorityStore::update_entry(RegistrationEntry entry) {
  std::lock_guard lock(mu_);
  auto current = entries();
  auto it = std::find_if(current->begin(), current->end(), [&](const auto& e) { return e.id == entry.id; });
  if (it == current->end()) return count(Result<RegistrationEntry>(make_error(ErrorCode::kNotFound, "no entry with id '" + entry.id + "'")));
  if (entry.revision != 0 && entry.revision != it->revision) {
    return count(Result<RegistrationEntry>(make_error(
        ErrorCode::kFailedPrecondition, "entry " + entry.id + " is at revision " + std::to_string(it->revision) +
                                            ", not " + std::to_string(entry.revision) + " (changed meanwhile)")));
  }
  if (Status s = normalize_entry(entry, options_.entry_limits, options_.trust_domain); !s.ok()) return count(Result<RegistrationEntry>(s.error()));
  for (const auto& e : *current) {
    if (e.id != entry.id && same_registration(e, entry)) {
      return count(Result<RegistrationEntry>(make_error(ErrorCode::kAlreadyExists, "entry " + e.id + " already registers " +
                                                            entry.spiffe_id + " with the same parent_id and selectors")));
    }
  }
  entry.created_at = it->created_at;
  entry.revision = it->revision + 1;
  if (Status s = count(replace_entry(entry)); !s.ok()) return s.error();
  stats_.writes.inc();
  std::vector<RegistrationEntry> next = *current;
  next[static_cast<size_t>(it - current->begin())] = entry;
  publish(std::move(next));
  return entry;
}

Status AuthorityStore::delete_entry(std::string_view id) {
  std::lock_guard lock(mu_);
  auto stmt = db_->prepare("DELETE FROM entries WHERE id = ?");
  if (!stmt.ok()) return count(Status(stmt.error()));
  if (Status s = count(stmt->bind(1, id).run()); !s.ok()) return s;
  if (db_->changes() == 0) return count(Status(make_error(ErrorCode::kNotFound, "no entry with id '" + std::string(id) + "'")));
  stats_.writes.inc();
  auto current = entries();
  std::vector<RegistrationEntry> next;
  next.reserve(current->size());
  for (const auto& e : *current) {
    if (e.id != id) next.push_back(e);
  }
  publish(std::move(next));
  return {};
}

Result<RegistrationEntry> AuthorityStore::get_entry(std::string_view id) const {
  auto current = entries();
  auto it = std::lower_bound(current->begin(), current->end(), id,
                             [](const RegistrationEntry& e, std::string_view key) { return e.id < key; });
  if (it == current->end() || it->id != id) {
    return count(Result<RegistrationEntry>(make_error(ErrorCode::kNotFound, "no entry with id '" + std::string(id) + "'")));
  }
  return *it;
}

Result<SeedResult> AuthorityStore::seed_entries(std::vector<RegistrationEntry> entries) {
  std::lock_guard lock(mu_);
  auto current = entries_.load();
  auto key_of = [](const RegistrationEntry& e) { return e.spiffe_id + '\n' + e.parent_id + '\n' + join_lines(e.selectors); };
  std::map<std::string, size_t> stored;  // registration key -> index in `next`
  std::vector<RegistrationEntry> next = *current;
  for (size_t i = 0; i < next.size(); ++i) stored.emplace(key_of(next[i]), i);
  std::map<std::string, size_t> seen;
  std::unordered_set<std::string> ids;
  for (const auto& e : next) ids.insert(e.id);
  SeedResult result;
  auto tx = Transaction::begin(*db_);
  if (!tx.ok()) return count(Result<SeedResult>(tx.error()));
  for (size_t i = 0; i < entries.size(); ++i) {
    RegistrationEntry& e = entries[i];
    auto at = [&](const Error& err) { return count(Result<SeedResult>(make_error(err.code, "entries[" + std::to_string(i) + "] (" + e.spiffe_id + "): " + err.message))); };
    if (Status s = normalize_entry(e, options_.entry_limits, options_.trust_domain); !s.ok()) return at(s.error());
    std::string key = key_of(e);
    if (!seen.emplace(key, i).second) {
      return at(invalid("registers the same spiffe_id, parent_id and selectors as entries[" + std::to_string(seen[key]) + "]"));
    }
    if (auto it = stored.find(key); it != stored.end()) {
      RegistrationEntry& old = next[it->second];
      if (old.x509_svid_ttl == e.x509_svid_ttl && old.jwt_svid_ttl == e.jwt_svid_ttl && old.dns_names == e.dns_names) {
        ++result.unchanged;
        continue;
      }
      e.id = old.id;
      e.created_at = old.created_at;
      e.revision = old.revision + 1;
      if (Status s = replace_entry(e); !s.ok()) return at(s.error());
      old = e;
      ++result.updated;
      continue;
    }
    auto prepared = prepare_new(e, next.size(), [&](const std::string& id) { return ids.count(id) != 0; });
    if (!prepared.ok()) return at(prepared.error());
    ids.insert(prepared->id);
    if (Status s = insert_entry(*prepared); !s.ok()) return at(s.error());
    stored.emplace(key, next.size());
    next.push_back(std::move(prepared.value()));
    ++result.created;
  }
  if (result.created == 0 && result.updated == 0) return result;  // the transaction rolls back: nothing written
  if (Status s = tx->commit(); !s.ok()) return count(Result<SeedResult>(s.error()));
  stats_.writes.inc();
  std::sort(next.begin(), next.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  publish(std::move(next));
  return result;
}

Result<JoinToken> AuthorityStore::create_join_token(std::chrono::seconds ttl) {
  if (ttl.count() <= 0 || ttl > options_.max_join_token_ttl) {
    return count(Result<JoinToken>(invalid("join token ttl must be from 1s to " +
                                           std::to_string(options_.max_join_token_ttl.count()) + "s")));
  }
  std::lock_guard lock(mu_);
  int64_t now = now_seconds();
  auto prune = db_->prepare("DELETE FROM join_tokens WHERE expires_at <= ?");
  if (!prune.ok()) return count(Result<JoinToken>(prune.error()));
  if (Status s = prune->bind(1, now).run(); !s.ok()) return count(Result<JoinToken>(s.error()));
  auto n = db_->query_text("SELECT COUNT(*) FROM join_tokens");
  if (!n.ok()) return count(Result<JoinToken>(n.error()));
  if (std::stoull(*n) >= options_.max_join_tokens) {
    return count(Result<JoinToken>(make_error(ErrorCode::kResourceExhausted,
                                              std::to_string(options_.max_join_tokens) + " join tokens are outstanding, the limit")));
  }
  JoinToken token{random_hex(32), random_hex(8), now + ttl.count()};
  auto stmt = db_->prepare("INSERT INTO join_tokens (token_sha256, token_id, expires_at) VALUES (?, ?, ?)");
  if (!stmt.ok()) return count(Result<JoinToken>(stmt.error()));
  if (Status s = stmt->bind(1, sha256_hex(token.token)).bind(2, token.token_id).bind(3, token.expires_at).run(); !s.ok()) {
    return count(Result<JoinToken>(s.error()));
  }
  stats_.writes.inc();
  return token;
}

Result<std::string> AuthorityStore::consume_join_token(std::string_view token) {
  using R = Result<std::string>;
  if (token.size() != 64 || !is_lower_hex(token)) return count(R(invalid("malformed join token (expected 64 lowercase hex characters)")));
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
  if (svid.serial.empty() || svid.serial.size() > 64 || !is_lower_hex(svid.serial)) {
    return count(Status(invalid("issued SVID serial must be 1 to 64 lowercase hex characters")));
  }
  std::lock_guard lock(mu_);
  auto stmt = db_->prepare(
      "INSERT OR REPLACE INTO issued_svids (serial, spiffe_id, entry_id, node_id, expires_at) VALUES (?,?,?,?,?)");
  if (!stmt.ok()) return count(Status(stmt.error()));
  Status s = stmt->bind(1, svid.serial).bind(2, svid.spiffe_id).bind(3, svid.entry_id).bind(4, svid.node_id)
                 .bind(5, svid.expires_at).run();
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
  auto stmt = db_->prepare("SELECT serial, spiffe_id, entry_id, node_id, expires_at FROM issued_svids WHERE serial = ?");
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
    return count(R(make_error(ErrorCode::kResourceExhausted, std::to_string(serials.size()) + " serials exceed the limit of " +
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
    if (r.serial.empty() || r.serial.size() > 64 || !is_lower_hex(r.serial)) {
      return count(R(invalid("revocation serial '" + r.serial.substr(0, 80) + "' must be 1 to 64 lowercase hex characters")));
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
    Status s = stmt->bind(1, r.serial).bind(2, r.spiffe_id).bind(3, r.expires_at).bind(4, r.revoked_at).bind(5, r.reason).run();
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

Status AuthorityStore::integrity_check() const {
  std::lock_guard lock(mu_);
  auto result = db_->query_text("PRAGMA integrity_check");
  if (!result.ok()) return count(Status(result.error()));
  if (*result != "ok") return count(Status(make_error(ErrorCode::kIo, "integrity check failed: " + *result)));
  return {};
}

}  // namespace portcullis::attest::authority
