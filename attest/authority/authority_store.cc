#include "attest/authority/authority_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <unordered_set>

#include "attest/authority/store_schema.h"

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

// prepare_file makes the directory (0700, if missing) and the file (0600) before SQLite opens it,
// so the database is never readable by others, not even for a moment. SQLite creates the -wal and
// -shm files with the main file's mode. An existing directory is left as the operator made it
// (it may be shared, e.g. /var/lib), with a warning when others can enter it.
Status prepare_file(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) return make_error(ErrorCode::kIo, dir.string() + " is not a directory");
      if (st.st_mode & 077) {
        spdlog::warn("authority store directory {} is accessible to group/others (mode {:o}); 0700 is recommended",
                     dir.string(), st.st_mode & 07777);
      }
    } else {
      std::error_code ec;
      if (dir.has_parent_path()) std::filesystem::create_directories(dir.parent_path(), ec);
      // chmod: mkdir's mode passes through the umask; EEXIST: another opener raced us to it.
      if ((::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) || ::chmod(dir.c_str(), 0700) != 0) {
        return make_error(ErrorCode::kIo, "cannot create directory " + dir.string() + ": " + std::strerror(errno));
      }
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
  if (Status s = store->load_evicted(); !s.ok()) return fail(s.error());
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
  auto snapshot = std::make_shared<const std::vector<RegistrationEntry>>(std::move(entries));
  matcher_.store(std::make_shared<const EntryMatcher>(std::move(snapshot)), std::memory_order_release);
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
      return count(Result<RegistrationEntry>(make_error(
          ErrorCode::kAlreadyExists,
          "entry " + e.id + " already registers " + entry.spiffe_id + " with the same parent_id and selectors")));
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
  if (it == current->end())
    return count(Result<RegistrationEntry>(make_error(ErrorCode::kNotFound, "no entry with id '" + entry.id + "'")));
  if (entry.revision != 0 && entry.revision != it->revision) {
    return count(Result<RegistrationEntry>(make_error(
        ErrorCode::kFailedPrecondition, "entry " + entry.id + " is at revision " + std::to_string(it->revision) +
                                            ", not " + std::to_string(entry.revision) + " (changed meanwhile)")));
  }
  if (Status s = normalize_entry(entry, options_.entry_limits, options_.trust_domain); !s.ok())
    return count(Result<RegistrationEntry>(s.error()));
  for (const auto& e : *current) {
    if (e.id != entry.id && same_registration(e, entry)) {
      return count(Result<RegistrationEntry>(make_error(
          ErrorCode::kAlreadyExists,
          "entry " + e.id + " already registers " + entry.spiffe_id + " with the same parent_id and selectors")));
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
  if (db_->changes() == 0)
    return count(Status(make_error(ErrorCode::kNotFound, "no entry with id '" + std::string(id) + "'")));
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
    return count(
        Result<RegistrationEntry>(make_error(ErrorCode::kNotFound, "no entry with id '" + std::string(id) + "'")));
  }
  return *it;
}

Result<SeedResult> AuthorityStore::seed_entries(std::vector<RegistrationEntry> entries) {
  std::lock_guard lock(mu_);
  auto current = this->entries();
  auto key_of = [](const RegistrationEntry& e) {
    return e.spiffe_id + '\n' + e.parent_id + '\n' + join_lines(e.selectors);
  };
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
    auto at = [&](const Error& err) {
      return count(Result<SeedResult>(
          make_error(err.code, "entries[" + std::to_string(i) + "] (" + e.spiffe_id + "): " + err.message)));
    };
    if (Status s = normalize_entry(e, options_.entry_limits, options_.trust_domain); !s.ok()) return at(s.error());
    std::string key = key_of(e);
    if (!seen.emplace(key, i).second) {
      return at(invalid("registers the same spiffe_id, parent_id and selectors as entries[" +
                        std::to_string(seen[key]) + "]"));
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

Result<StoreSettings> AuthorityStore::settings() const {
  std::lock_guard lock(mu_);
  StoreSettings out;
  for (auto [pragma, field] :
       {std::pair{"journal_mode", &out.journal_mode}, std::pair{"synchronous", &out.synchronous},
        std::pair{"foreign_keys", &out.foreign_keys}, std::pair{"busy_timeout", &out.busy_timeout_ms},
        std::pair{"user_version", &out.schema_version}}) {
    auto value = db_->query_text(std::string("PRAGMA ") + pragma);
    if (!value.ok()) return count(Result<StoreSettings>(value.error()));
    *field = *value;
  }
  return out;
}

Status AuthorityStore::integrity_check() const {
  std::lock_guard lock(mu_);
  auto result = db_->query_text("PRAGMA integrity_check");
  if (!result.ok()) return count(Status(result.error()));
  if (*result != "ok") return count(Status(make_error(ErrorCode::kIo, "integrity check failed: " + *result)));
  return {};
}

}  // namespace portcullis::attest::authority
