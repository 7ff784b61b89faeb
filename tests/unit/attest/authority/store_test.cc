// AuthorityStore against real SQLite files: entry CRUD and validation, matching, join tokens,
// issued SVIDs, revocations, schema migrations, file modes, kill -9 durability, and the YAML seed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "attest/authority/authority_store.h"
#include "attest/authority/entries_file.h"
#include "attest/authority/store_schema.h"
#include "common/digest.h"

namespace portcullis::attest::authority {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

RegistrationEntry entry(std::string spiffe_id, std::vector<std::string> selectors, std::string parent_id = "") {
  RegistrationEntry e;
  e.spiffe_id = std::move(spiffe_id);
  e.selectors = std::move(selectors);
  e.parent_id = std::move(parent_id);
  return e;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// raw_exec runs SQL on the file with a separate connection, as an operator's sqlite3 shell would.
void raw_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << msg;
}

int64_t raw_int(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  int64_t v = -1;
  if (sqlite3_step(stmt) == SQLITE_ROW) v = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return v;
}

class AuthorityStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/authority_store_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "data" / "authority.db").string();
    options_.clock = [this] { return std::chrono::system_clock::time_point(std::chrono::seconds(now_.load())); };
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<AuthorityStore> open_store() {
    auto store = AuthorityStore::open(path_, stats_, options_);
    EXPECT_TRUE(store.ok()) << store.error().message;
    return store.ok() ? std::move(store.value()) : nullptr;
  }
  int64_t stat(const std::string& leaf) const { return stats_.value("authority_store." + leaf).value_or(-1); }

  fs::path dir_;
  std::string path_;
  std::atomic<int64_t> now_{1'700'000'000};
  AuthorityStoreOptions options_;
  StatsStore stats_;
};

TEST_F(AuthorityStoreTest, CreateGetUpdateDeleteAndReopen) {
  auto store = open_store();
  ASSERT_TRUE(store);
  RegistrationEntry e = entry("spiffe://example.org/web", {"unix:uid:1000", "k8s:pod-uid:abc", "unix:uid:1000"});
  e.x509_svid_ttl = 3600s;
  e.dns_names = {"web.local", "web", "web.local"};
  auto created = store->create_entry(e);
  ASSERT_TRUE(created.ok()) << created.error().message;
  EXPECT_EQ(created->id.size(), 32u);
  EXPECT_TRUE(
      std::all_of(created->id.begin(), created->id.end(), [](char c) { return std::isxdigit(c) && !std::isupper(c); }));
  EXPECT_EQ(created->selectors, (std::vector<std::string>{"k8s:pod-uid:abc", "unix:uid:1000"}));
  EXPECT_EQ(created->dns_names, (std::vector<std::string>{"web.local", "web"}));
  EXPECT_EQ(created->created_at, now_.load());
  EXPECT_EQ(created->revision, 1);
  EXPECT_EQ(store->get_entry(created->id).value(), *created);
  EXPECT_EQ(stat("entries"), 1);

  now_ += 10;
  RegistrationEntry changed = *created;
  changed.jwt_svid_ttl = 300s;
  changed.selectors.push_back("unix:gid:50");
  auto updated = store->update_entry(changed);
  ASSERT_TRUE(updated.ok()) << updated.error().message;
  EXPECT_EQ(updated->revision, 2);
  EXPECT_EQ(updated->created_at, created->created_at);
  EXPECT_EQ(updated->selectors, (std::vector<std::string>{"k8s:pod-uid:abc", "unix:gid:50", "unix:uid:1000"}));
  // A read-modify-write based on revision 1 lost the race: refused, nothing changed.
  auto stale = store->update_entry(changed);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code, ErrorCode::kFailedPrecondition);
  changed.revision = 0;  // no revision: unconditional
  EXPECT_EQ(store->update_entry(changed)->revision, 3);

  RegistrationEntry second = *store->create_entry(entry("spiffe://example.org/db", {"unix:uid:1001"}));
  store.reset();
  store = open_store();
  ASSERT_TRUE(store);
  auto all = store->list_entries();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.id < b.id; }));
  EXPECT_EQ(store->get_entry(created->id)->revision, 3);
  EXPECT_EQ(store->get_entry(second.id).value(), second);

  ASSERT_TRUE(store->delete_entry(created->id).ok());
  EXPECT_EQ(store->get_entry(created->id).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store->delete_entry(created->id).error().code, ErrorCode::kNotFound);
  RegistrationEntry ghost = second;
  ghost.id = "no-such-id";
  EXPECT_EQ(store->update_entry(ghost).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store->entries()->size(), 1u);
  EXPECT_EQ(stat("entries"), 1);
  EXPECT_EQ(stat("rejected"), 4);  // stale update, 2 not found lookups/deletes, update of a ghost
  EXPECT_EQ(stat("failures"), 0);
}

TEST_F(AuthorityStoreTest, RejectsInvalidEntriesWithTheReason) {
  options_.trust_domain = "example.org";
  options_.entry_limits.max_selectors = 3;
  options_.entry_limits.max_selector_bytes = 64;
  options_.entry_limits.max_dns_names = 2;
  options_.entry_limits.max_ttl = 86400s;
  auto store = open_store();
  ASSERT_TRUE(store);
  struct Case {
    std::function<void(RegistrationEntry&)> mutate;
    std::string message;
  };
  const Case cases[] = {
      {[](auto& e) { e.spiffe_id = "http://example.org/web"; }, "spiffe_id: "},
      {[](auto& e) { e.spiffe_id = "spiffe://example.org"; }, "has no path"},
      {[](auto& e) { e.spiffe_id = "spiffe://example.org/node/join_token/x"; }, "reserved for node SVIDs"},
      {[](auto& e) { e.spiffe_id = "spiffe://example.org/portcullis/authority"; }, "reserved for the authority"},
      {[](auto& e) { e.spiffe_id = "spiffe://example.org/portcullis"; }, "reserved for the authority"},
      {[](auto& e) { e.spiffe_id = "spiffe://other.org/web"; }, "not in the authority's trust domain"},
      {[](auto& e) { e.parent_id = "spiffe://example.org/Bad Path"; }, "parent_id: "},
      {[](auto& e) { e.parent_id = "spiffe://other.org/node/x"; }, "parent_id: "},
      {[](auto& e) { e.selectors.clear(); }, "at least one is required"},
      {[](auto& e) { e.selectors = {"unix:uid"}; }, "is not TYPE:KEY:VALUE"},
      {[](auto& e) { e.selectors = {"unix::1000"}; }, "empty TYPE, KEY or VALUE"},
      {[](auto& e) { e.selectors = {":uid:1000"}; }, "empty TYPE, KEY or VALUE"},
      {[](auto& e) { e.selectors = {"unix:uid:"}; }, "empty TYPE, KEY or VALUE"},
      {[](auto& e) { e.selectors = {"unix:user:a b"}; }, "space, control or non-ASCII"},
      {[](auto& e) { e.selectors = {"unix:user:a\nb"}; }, "space, control or non-ASCII"},
      {[](auto& e) { e.selectors = {"cgroup:path:/" + std::string(80, 'x')}; }, "over the limit of 64"},
      {[](auto& e) {
         e.selectors = {"a:b:1", "a:b:2", "a:b:3", "a:b:4"};
       },
       "4 exceed the limit of 3"},
      {[](auto& e) { e.x509_svid_ttl = -1s; }, "x509_svid_ttl: must not be negative"},
      {[](auto& e) { e.jwt_svid_ttl = 86401s; }, "jwt_svid_ttl: 86401s exceeds the limit of 86400s"},
      {[](auto& e) { e.dns_names = {"-web.local"}; }, "starting or ending with '-'"},
      {[](auto& e) { e.dns_names = {"web..local"}; }, "empty or over-long label"},
      {[](auto& e) { e.dns_names = {"web_1.local"}; }, "a character other than"},
      {[](auto& e) { e.dns_names = {"a.*.local"}; }, "a character other than"},
      {[](auto& e) {
         e.dns_names = {"a", "b", "c"};
       },
       "3 exceed the limit of 2"},
      {[](auto& e) { e.id = "has/slash"; }, "id: entry id 'has/slash'"},
  };
  for (const auto& c : cases) {
    RegistrationEntry e = entry("spiffe://example.org/web", {"unix:uid:1000"});
    c.mutate(e);
    auto r = store->create_entry(e);
    ASSERT_FALSE(r.ok()) << c.message;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << c.message;
    EXPECT_NE(r.error().message.find(c.message), std::string::npos) << r.error().message;
  }
  EXPECT_EQ(stat("rejected"), static_cast<int64_t>(std::size(cases)));
  EXPECT_TRUE(store->entries()->empty());
  // The same shapes that are valid: wildcard DNS name, colons inside the VALUE, a parent.
  RegistrationEntry ok = entry("spiffe://example.org/web", {"cgroup:path:/kubepods/a:b", "unix:uid:0"},
                               "spiffe://example.org/node/join_token/ab12");
  ok.dns_names = {"*.web.local"};
  ok.id = "seed-web_1.v2";
  auto r = store->create_entry(ok);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->id, "seed-web_1.v2");
}

TEST_F(AuthorityStoreTest, DuplicatesAndLimits) {
  options_.max_entries = 3;
  auto store = open_store();
  ASSERT_TRUE(store);
  auto a = store->create_entry(entry("spiffe://example.org/web", {"unix:uid:1", "unix:gid:2"}));
  ASSERT_TRUE(a.ok());
  // Same registration with the selectors in another order and repeated: a duplicate.
  auto dup = store->create_entry(entry("spiffe://example.org/web", {"unix:gid:2", "unix:uid:1", "unix:gid:2"}));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, ErrorCode::kAlreadyExists);
  EXPECT_NE(dup.error().message.find(a->id), std::string::npos) << dup.error().message;
  // A different parent or a different selector set is a different registration.
  auto b = store->create_entry(
      entry("spiffe://example.org/web", {"unix:uid:1", "unix:gid:2"}, "spiffe://example.org/node/n1"));
  ASSERT_TRUE(b.ok());
  RegistrationEntry with_id = entry("spiffe://example.org/web", {"unix:uid:1"});
  with_id.id = a->id;
  EXPECT_EQ(store->create_entry(with_id).error().code, ErrorCode::kAlreadyExists);
  // Updating b into a's registration is a duplicate too.
  RegistrationEntry clash = *b;
  clash.parent_id.clear();
  EXPECT_EQ(store->update_entry(clash).error().code, ErrorCode::kAlreadyExists);
  ASSERT_TRUE(store->create_entry(entry("spiffe://example.org/db", {"unix:uid:1"})).ok());
  auto full = store->create_entry(entry("spiffe://example.org/cache", {"unix:uid:1"}));
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code, ErrorCode::kResourceExhausted);
  EXPECT_EQ(store->entries()->size(), 3u);
  EXPECT_EQ(raw_int(path_, "SELECT COUNT(*) FROM entries"), 3);
}

TEST_F(AuthorityStoreTest, MatchIsSubsetAndParentScopedAndSortedById) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const std::string node = "spiffe://example.org/node/join_token/n1";
  auto web = *store->create_entry(entry("spiffe://example.org/web", {"unix:uid:1000"}));
  auto web_hash = *store->create_entry(entry("spiffe://example.org/web-pinned", {"unix:sha256:ab", "unix:uid:1000"}));
  auto on_node = *store->create_entry(entry("spiffe://example.org/web-n1", {"unix:uid:1000"}, node));
  auto on_other =
      *store->create_entry(entry("spiffe://example.org/web-n2", {"unix:uid:1000"}, "spiffe://example.org/node/x"));
  auto db = *store->create_entry(entry("spiffe://example.org/db", {"unix:uid:1001"}));
  auto snapshot = store->entries();
  auto ids = [](const std::vector<const RegistrationEntry*>& m) {
    std::vector<std::string> out;
    for (const auto* e : m) out.push_back(e->id);
    return out;
  };
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  std::vector<std::string> attested = {"unix:gid:1000", "unix:path:/usr/bin/web", "unix:sha256:ab", "unix:uid:1000"};
  EXPECT_EQ(ids(AuthorityStore::match(*snapshot, node, attested)), sorted({web.id, web_hash.id, on_node.id}));
  // Without the hash selector the pinned entry no longer applies; on another node neither does n1's.
  std::vector<std::string> no_hash = {"unix:gid:1000", "unix:uid:1000"};
  EXPECT_EQ(ids(AuthorityStore::match(*snapshot, "spiffe://example.org/node/x", no_hash)),
            sorted({web.id, on_other.id}));
  // An unsorted selector list matches the same.
  std::vector<std::string> shuffled = {"unix:uid:1000", "unix:sha256:ab", "unix:gid:1000"};
  EXPECT_EQ(ids(AuthorityStore::match(*snapshot, node, shuffled)), sorted({web.id, web_hash.id, on_node.id}));
  EXPECT_EQ(ids(AuthorityStore::match(*snapshot, node, {"unix:uid:1001"})), std::vector<std::string>{db.id});
  EXPECT_TRUE(AuthorityStore::match(*snapshot, node, {"unix:uid:1002"}).empty());
  EXPECT_TRUE(AuthorityStore::match(*snapshot, node, {}).empty());
  // The indexed matcher gives the same answers.
  auto matcher = store->matcher();
  EXPECT_EQ(matcher->entries(), snapshot);
  EXPECT_EQ(ids(matcher->match(node, attested)), sorted({web.id, web_hash.id, on_node.id}));
  EXPECT_EQ(ids(matcher->match("spiffe://example.org/node/x", no_hash)), sorted({web.id, on_other.id}));
  EXPECT_EQ(ids(matcher->match(node, shuffled)), sorted({web.id, web_hash.id, on_node.id}));
  EXPECT_TRUE(matcher->match(node, {"unix:uid:1002"}).empty());
  // A snapshot is immutable: a later delete publishes a new one and leaves this one whole.
  ASSERT_TRUE(store->delete_entry(web.id).ok());
  EXPECT_EQ(snapshot->size(), 5u);
  EXPECT_EQ(store->entries()->size(), 4u);
  EXPECT_EQ(ids(AuthorityStore::match(*store->entries(), node, attested)), sorted({web_hash.id, on_node.id}));
}

// The index must never change an answer: random entries and workloads over a small selector
// alphabet (so subsets, shared keys and parents collide often), indexed vs linear.
TEST(EntryMatcherTest, AgreesWithTheLinearScan) {
  std::mt19937 rng(12345);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  auto selector = [&] { return "t" + std::to_string(pick(3)) + ":k:" + std::to_string(pick(6)); };
  auto entries = std::make_shared<std::vector<RegistrationEntry>>();
  for (int i = 0; i < 400; ++i) {
    RegistrationEntry e;
    e.id = random_hex(16);
    for (int k = 1 + pick(3); k > 0; --k) e.selectors.push_back(selector());
    std::sort(e.selectors.begin(), e.selectors.end());
    e.selectors.erase(std::unique(e.selectors.begin(), e.selectors.end()), e.selectors.end());
    if (pick(3) == 0) e.parent_id = "spiffe://example.org/node/" + std::to_string(pick(3));
    entries->push_back(std::move(e));
  }
  std::sort(entries->begin(), entries->end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  EntryMatcher matcher(entries);
  size_t total = 0;
  for (int q = 0; q < 2000; ++q) {
    std::vector<std::string> have;
    for (int k = pick(9); k > 0; --k) have.push_back(selector());  // unsorted, maybe repeated
    std::string node = "spiffe://example.org/node/" + std::to_string(pick(4));
    auto want = match_entries(*entries, node, have);
    ASSERT_EQ(matcher.match(node, have), want) << q;
    total += want.size();
  }
  EXPECT_GT(total, 2000u);  // the data exercises matches, not just misses
}

TEST_F(AuthorityStoreTest, ReadersMatchWhileAWriterWrites) {
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_entry(entry("spiffe://example.org/always", {"unix:uid:7"})).ok());
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::thread reader([&] {
    while (!done.load()) {
      auto m = store->matcher()->match("", {"unix:uid:7"});
      if (m.empty() || m.size() > 200) bad++;
    }
  });
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(store->create_entry(entry("spiffe://example.org/w" + std::to_string(i), {"unix:uid:7"})).ok());
  }
  done = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(AuthorityStore::match(*store->entries(), "", {"unix:uid:7"}).size(), 201u);
  EXPECT_EQ(stat("writes"), 201);
}

TEST_F(AuthorityStoreTest, JoinTokensAreOneTimeExpireAndAreStoredOnlyHashed) {
  options_.max_join_tokens = 3;
  auto store = open_store();
  ASSERT_TRUE(store);
  auto t = store->create_join_token(600s);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->token.size(), 64u);
  EXPECT_EQ(t->token_id.size(), 16u);
  EXPECT_EQ(t->expires_at, now_.load() + 600);
  auto expiring = *store->create_join_token(60s);
  auto unused = *store->create_join_token(60s);

  // Neither the database nor its WAL holds the secret; the hash is what is stored.
  std::string raw = read_all(path_) + read_all(path_ + "-wal");
  EXPECT_EQ(raw.find(t->token), std::string::npos);
  EXPECT_EQ(raw.find(expiring.token), std::string::npos);
  EXPECT_NE(raw.find(sha256_hex(t->token)), std::string::npos);
  EXPECT_NE(raw.find(t->token_id), std::string::npos);

  auto limit = store->create_join_token(60s);
  ASSERT_FALSE(limit.ok());
  EXPECT_EQ(limit.error().code, ErrorCode::kResourceExhausted);

  auto id = store->consume_join_token(t->token);
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(*id, t->token_id);
  auto again = store->consume_join_token(t->token);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kPermissionDenied);
  EXPECT_NE(again.error().message.find("already used"), std::string::npos);

  std::string unknown(64, 'a');
  EXPECT_EQ(store->consume_join_token(unknown).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store->consume_join_token("not-a-token").error().code, ErrorCode::kInvalidArgument);
  std::string upper = expiring.token;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  if (upper != expiring.token) {
    EXPECT_EQ(store->consume_join_token(upper).error().code, ErrorCode::kInvalidArgument);
  }

  now_ += 60;  // expires_at is exclusive
  auto late = store->consume_join_token(expiring.token);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, ErrorCode::kPermissionDenied);
  EXPECT_NE(late.error().message.find("expired 0s ago"), std::string::npos) << late.error().message;

  EXPECT_EQ(store->create_join_token(0s).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(store->create_join_token(8 * 24h).error().code, ErrorCode::kInvalidArgument);
  // The two expired tokens no longer count against the limit.
  ASSERT_TRUE(store->create_join_token(60s).ok());
  auto pruned = store->prune_expired(now_.load() + 1000);
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(pruned->join_tokens, 2u);  // the used one (600s) and the new one
  EXPECT_EQ(store->consume_join_token(unused.token).error().code, ErrorCode::kNotFound);  // pruned on create
  EXPECT_EQ(stat("join_tokens_consumed"), 1);
}

TEST_F(AuthorityStoreTest, IssuedSvidsByNodeAndSerialAndPruning) {
  auto store = open_store();
  ASSERT_TRUE(store);
  const std::string n1 = "spiffe://example.org/node/join_token/n1", n2 = "spiffe://example.org/node/join_token/n2";
  IssuedSvid a{"0a", "spiffe://example.org/web", "e1", n1, 100};
  IssuedSvid b{"0b", "spiffe://example.org/db", "e2", n1, 200};
  IssuedSvid c{"0c", "spiffe://example.org/web", "e1", n2, 300};
  for (const auto& s : {b, a, c}) ASSERT_TRUE(store->record_issued(s).ok());
  EXPECT_EQ(store->issued_svid("0b")->value(), b);
  EXPECT_FALSE(store->issued_svid("ff")->has_value());
  EXPECT_EQ(*store->issued_to_node(n1), (std::vector<IssuedSvid>{a, b}));
  // n1 may only touch its own serials: 0c is n2's, ff does not exist.
  EXPECT_EQ(*store->issued_to_node(n1, {"0c", "0b", "ff", "0b"}), (std::vector<IssuedSvid>{b}));
  EXPECT_EQ(store->record_issued(IssuedSvid{"0X", "", "", n1, 1}).error().code, ErrorCode::kInvalidArgument);
  auto pruned = store->prune_expired(200);
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(pruned->issued_svids, 2u);
  EXPECT_EQ(*store->issued_to_node(n1), std::vector<IssuedSvid>{});
  EXPECT_EQ(*store->issued_to_node(n2), std::vector<IssuedSvid>{c});
}

TEST_F(AuthorityStoreTest, RevocationsAreIdempotentAndKeptUntilTheCertificateExpires) {
  auto store = open_store();
  ASSERT_TRUE(store);
  Revocation r1{"01", "spiffe://example.org/web", 1000, 10, "workload exited"};
  Revocation r2{"02", "spiffe://example.org/db", 2000, 11, "admin"};
  EXPECT_EQ(*store->add_revocations({r1, r2}), 2u);
  Revocation r1_again = r1;
  r1_again.reason = "again";
  EXPECT_EQ(*store->add_revocations({r1_again}), 0u);
  EXPECT_EQ(*store->live_revocations(999), (std::vector<Revocation>{r1, r2}));  // the first record wins
  EXPECT_TRUE(*store->is_revoked("01"));
  EXPECT_FALSE(*store->is_revoked("03"));
  EXPECT_EQ(*store->live_revocations(1000), std::vector<Revocation>{r2});
  EXPECT_FALSE(*store->is_revoked("01"));  // pruned: its certificate has expired anyway
  EXPECT_EQ(store->add_revocations({Revocation{"zz", "", 1, 1, ""}}).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(stat("revocations_added"), 2);
  store.reset();
  store = open_store();
  EXPECT_EQ(*store->live_revocations(0), std::vector<Revocation>{r2});
}

// Another process holding the write lock longer than busy_timeout: the write fails cleanly as
// unavailable, is counted, and neither the file nor the published snapshot changes.
TEST_F(AuthorityStoreTest, AWriteBlockedPastBusyTimeoutFailsAndChangesNothing) {
  options_.busy_timeout = 50ms;
  auto store = open_store();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_entry(entry("spiffe://example.org/web", {"unix:uid:1"})).ok());
  auto before = store->entries();
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto start = std::chrono::steady_clock::now();
  auto blocked = store->create_entry(entry("spiffe://example.org/db", {"unix:uid:2"}));
  auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.error().code, ErrorCode::kUnavailable) << blocked.error().message;
  EXPECT_GE(waited, 40ms);
  EXPECT_EQ(store->set_state("k", "v").error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(store->entries(), before);
  EXPECT_EQ(stat("failures"), 2);
  ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  EXPECT_TRUE(store->create_entry(entry("spiffe://example.org/db", {"unix:uid:2"})).ok());
  EXPECT_EQ(raw_int(path_, "SELECT COUNT(*) FROM entries"), 2);
}

TEST_F(AuthorityStoreTest, KeyValueStateAndBundleSequencePersist) {
  auto store = open_store();
  ASSERT_TRUE(store);
  EXPECT_FALSE(store->get_state("ca.active")->has_value());
  ASSERT_TRUE(store->set_state("ca.active", "a").ok());
  ASSERT_TRUE(store->set_state("ca.active", "b").ok());
  EXPECT_EQ(store->get_state("ca.active")->value(), "b");
  EXPECT_EQ(*store->next_bundle_sequence(), 1u);
  EXPECT_EQ(*store->next_bundle_sequence(), 2u);
  store.reset();
  store = open_store();
  EXPECT_EQ(*store->next_bundle_sequence(), 3u);
  EXPECT_EQ(store->get_state("ca.active")->value(), "b");
}

TEST_F(AuthorityStoreTest, MigratesAVersionOneDatabase) {
  fs::create_directories(fs::path(path_).parent_path());
  // A store as the first schema version left it, written without the store's code.
  raw_exec(path_, std::string(store_migrations()[0]) +
                      "INSERT INTO entries VALUES ('e1', 'spiffe://example.org/web', '', 'unix:gid:2\nunix:uid:1', "
                      "0, 0, 'web.local', 42, 7);"
                      "PRAGMA user_version = 1;");
  auto store = open_store();
  ASSERT_TRUE(store);
  EXPECT_EQ(raw_int(path_, "PRAGMA user_version"), static_cast<int64_t>(store_migrations().size()));
  auto e = store->get_entry("e1");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->selectors, (std::vector<std::string>{"unix:gid:2", "unix:uid:1"}));
  EXPECT_EQ(e->dns_names, std::vector<std::string>{"web.local"});
  EXPECT_EQ(e->created_at, 42);
  EXPECT_EQ(e->revision, 7);
  // Tables from later migrations work.
  auto t = store->create_join_token(60s);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_TRUE(store->consume_join_token(t->token).ok());
  EXPECT_EQ(raw_int(path_, "SELECT COUNT(*) FROM pragma_table_list WHERE name = 'revocations'"), 1);
  EXPECT_TRUE(store->integrity_check().ok());
}

TEST_F(AuthorityStoreTest, RefusesANewerSchemaAndForeignFiles) {
  fs::create_directories(fs::path(path_).parent_path());
  raw_exec(path_, std::string(store_migrations()[0]) + "CREATE TABLE from_the_future (x);PRAGMA user_version = 99;");
  auto store = AuthorityStore::open(path_, stats_, options_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(store.error().message.find("schema version is 99"), std::string::npos) << store.error().message;
  EXPECT_NE(store.error().message.find(path_), std::string::npos) << store.error().message;
  EXPECT_EQ(raw_int(path_, "PRAGMA user_version"), 99);
  EXPECT_EQ(raw_int(path_, "SELECT COUNT(*) FROM pragma_table_list WHERE name = 'join_tokens'"), 0);

  std::string junk = (dir_ / "junk.db").string();
  std::ofstream(junk) << std::string(4096, 'x');
  auto bad = AuthorityStore::open(junk, stats_, options_);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("not a database"), std::string::npos) << bad.error().message;
}

TEST_F(AuthorityStoreTest, CreatesTheDirectory0700AndTheFiles0600) {
  mode_t old = ::umask(0);  // not relying on the caller's umask
  path_ = (dir_ / "a" / "b" / "authority.db").string();
  auto store = open_store();
  ::umask(old);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_entry(entry("spiffe://example.org/web", {"unix:uid:1"})).ok());
  auto mode = [](const std::string& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  };
  EXPECT_EQ(mode((dir_ / "a" / "b").string()), 0700u);
  EXPECT_EQ(mode(path_), 0600u);
  EXPECT_EQ(mode(path_ + "-wal"), 0600u);
  EXPECT_EQ(mode(path_ + "-shm"), 0600u);
  // An existing file with loose permissions is tightened.
  store.reset();
  ASSERT_EQ(::chmod(path_.c_str(), 0644), 0);
  store = open_store();
  EXPECT_EQ(mode(path_), 0600u);
  // WAL is recorded in the file header (format versions 2/2), so every connection uses it; the
  // store's own connection runs with NORMAL sync, foreign keys and the configured busy timeout.
  auto settings = store->settings();
  ASSERT_TRUE(settings.ok());
  EXPECT_EQ(settings->journal_mode, "wal");
  EXPECT_EQ(settings->synchronous, "1");
  EXPECT_EQ(settings->foreign_keys, "1");
  EXPECT_EQ(settings->busy_timeout_ms, "5000");
  EXPECT_EQ(settings->schema_version, std::to_string(store_migrations().size()));
  EXPECT_EQ(read_all(path_).substr(18, 2), std::string("\x02\x02", 2));
}

TEST_F(AuthorityStoreTest, CommittedEntriesSurviveKillNine) {
  fs::create_directories(fs::path(path_).parent_path());
  int acks[2];
  ASSERT_EQ(::pipe(acks), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child writes as fast as it can and reports each committed entry; it never exits on its own.
    ::close(acks[0]);
    StatsStore stats;
    auto store = AuthorityStore::open(path_, stats, AuthorityStoreOptions{});
    if (!store.ok()) ::_exit(2);
    for (uint32_t i = 0;; ++i) {
      auto r = (*store)->create_entry(
          entry("spiffe://example.org/w" + std::to_string(i), {"unix:uid:" + std::to_string(i)}));
      if (!r.ok()) ::_exit(3);
      if (::write(acks[1], &i, sizeof i) != sizeof i) ::_exit(4);
    }
  }
  ::close(acks[1]);
  uint32_t last = 0;
  for (uint32_t got = 0; got < 300;) {
    ASSERT_EQ(::read(acks[0], &last, sizeof last), static_cast<ssize_t>(sizeof last));
    got = last + 1;
  }
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  // Acks written before the kill but not yet read are commits too.
  uint32_t more;
  while (::read(acks[0], &more, sizeof more) == static_cast<ssize_t>(sizeof more)) last = more;
  ::close(acks[0]);

  auto store = open_store();
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->integrity_check().ok());
  std::set<std::string> ids;
  for (const auto& e : store->list_entries()) ids.insert(e.spiffe_id);
  for (uint32_t i = 0; i <= last; ++i) ASSERT_TRUE(ids.count("spiffe://example.org/w" + std::to_string(i))) << i;
  // At most the one entry in flight when the signal landed was committed without its ack.
  EXPECT_LE(ids.size(), last + 2u);
  EXPECT_TRUE(store->create_entry(entry("spiffe://example.org/after", {"unix:uid:x"})).ok());
}

TEST_F(AuthorityStoreTest, EvictedNodesAreRecordedOnceAndReloadedOnOpen) {
  const std::string node = "spiffe://example.org/node/join_token/abc";
  {
    auto store = open_store();
    ASSERT_TRUE(store);
    EXPECT_FALSE(store->is_evicted(node));
    ASSERT_TRUE(store->evict_node(node, "stolen").ok());
    EXPECT_TRUE(store->is_evicted(node));
    EXPECT_FALSE(store->is_evicted("spiffe://example.org/node/join_token/abd"));
    now_ += 10;
    ASSERT_TRUE(store->evict_node(node, "again").ok()) << "idempotent";
    EXPECT_EQ(stat("nodes_evicted"), 1);
    auto empty = store->evict_node("", "x");
    EXPECT_EQ(empty.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(stat("rejected"), 1);
    // Pruning leaves evictions alone, however late.
    ASSERT_TRUE(store->prune_expired(now_.load() + 365 * 86400).ok());
  }
  EXPECT_EQ(raw_int(path_, "SELECT evicted_at FROM evicted_nodes WHERE node_id = '" + node + "'"), 1'700'000'000)
      << "the first record stands";
  auto store = open_store();
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->is_evicted(node)) << "reloaded on open";
}

TEST_F(AuthorityStoreTest, MigratesAVersionTwoDatabaseToEvictions) {
  fs::create_directories(fs::path(path_).parent_path());
  // A store as schema version 2 left it (before evictions), written without the store's code.
  raw_exec(path_, std::string(store_migrations()[0]) + std::string(store_migrations()[1]) +
                      "INSERT INTO revocations VALUES ('ab', 'spiffe://example.org/web', 9999999999, 1, 'exit');"
                      "PRAGMA user_version = 2;");
  auto store = open_store();
  ASSERT_TRUE(store);
  EXPECT_EQ(raw_int(path_, "PRAGMA user_version"), static_cast<int64_t>(store_migrations().size()));
  EXPECT_TRUE(*store->is_revoked("ab")) << "existing rows are kept";
  EXPECT_FALSE(store->is_evicted("spiffe://example.org/node/join_token/abc"));
  ASSERT_TRUE(store->evict_node("spiffe://example.org/node/join_token/abc", "").ok());
  EXPECT_EQ(raw_int(path_, "SELECT COUNT(*) FROM evicted_nodes"), 1);
  EXPECT_TRUE(store->integrity_check().ok());
}

class EntriesFileTest : public AuthorityStoreTest {
 protected:
  std::string write(const std::string& text) {
    std::string p = (dir_ / "entries.yaml").string();
    std::ofstream(p) << text;
    return p;
  }
};

TEST_F(EntriesFileTest, ParsesTheSeedShape) {
  auto entries = load_entries_file(write(R"(entries:
  - spiffe_id: spiffe://example.org/web
    parent_id: spiffe://example.org/node/join_token/ab
    selectors: ["unix:uid:1000", "unix:sha256:9f86", "unix:uid:1000"]
    x509_svid_ttl: 1h
    jwt_svid_ttl: 5m
    dns_names: [web.local]
  - spiffe_id: spiffe://example.org/db
    selectors: ["unix:uid:1001"]
)"));
  ASSERT_TRUE(entries.ok()) << entries.error().message;
  ASSERT_EQ(entries->size(), 2u);
  const auto& web = (*entries)[0];
  EXPECT_EQ(web.spiffe_id, "spiffe://example.org/web");
  EXPECT_EQ(web.parent_id, "spiffe://example.org/node/join_token/ab");
  EXPECT_EQ(web.selectors, (std::vector<std::string>{"unix:sha256:9f86", "unix:uid:1000"}));
  EXPECT_EQ(web.x509_svid_ttl, 3600s);
  EXPECT_EQ(web.jwt_svid_ttl, 300s);
  EXPECT_EQ(web.dns_names, std::vector<std::string>{"web.local"});
  EXPECT_EQ((*entries)[1].x509_svid_ttl, 0s);
  EXPECT_TRUE((*entries)[1].parent_id.empty());
}

TEST_F(EntriesFileTest, ReportsEveryProblemWithItsLine) {
  std::string p = write(R"(entries:
  - spiffe_id: spiffe://example.org/web
    selectors: ["unix:uid"]
  - spiffe_id: spiffe://example.org/node/x
    selectors: ["unix:uid:1"]
  - spiffe_id: spiffe://example.org/db
    selectors: ["unix:uid:1"]
    x509_svid_ttl: 1.5s
    colour: blue
  - selectors: ["unix:uid:2"]
    dns_names: ["bad_name"]
  - spiffe_id: spiffe://example.org/ok
    selectors: ["unix:uid:3"]
  - spiffe_id: spiffe://example.org/ok
    selectors: ["unix:uid:3"]
  - spiffe_id: spiffe://example.org/none
    selectors: []
)");
  auto entries = load_entries_file(p, {}, "example.org");
  ASSERT_FALSE(entries.ok());
  const std::string& m = entries.error().message;
  for (const std::string& want : std::vector<std::string>{
           p + ":3:17: entries[0].selectors[0]: selector 'unix:uid' is not TYPE:KEY:VALUE",
           p + ":4:16: entries[1].spiffe_id: 'spiffe://example.org/node/x' is under /node",
           p + ":8:20: entries[2].x509_svid_ttl: must be whole seconds",
           p + ":9:5: entries[2].colour: unknown field 'colour'",
           std::string("entries[3].spiffe_id: missing required field"),
           p + ":11:17: entries[3].dns_names[0]: DNS name 'bad_name'",
           p + ":14:5: entries[5]: registers the same spiffe_id, parent_id and selectors as entries[4]",
           "entries[6]: selectors: at least one is required",
       }) {
    EXPECT_NE(m.find(want), std::string::npos) << "missing: " << want << "\nin:\n" << m;
  }
  EXPECT_EQ(load_entries_file((dir_ / "missing.yaml").string()).error().code, ErrorCode::kInvalidArgument);
}

TEST_F(EntriesFileTest, SeedingIsIdempotentAndUpdatesChangedAttributes) {
  auto store = open_store();
  ASSERT_TRUE(store);
  auto manual = *store->create_entry(entry("spiffe://example.org/manual", {"unix:uid:9"}));
  auto seed = load_entries_file(write(R"(entries:
  - spiffe_id: spiffe://example.org/web
    selectors: ["unix:uid:1000"]
  - spiffe_id: spiffe://example.org/db
    selectors: ["unix:uid:1001"]
    x509_svid_ttl: 1h
)"));
  ASSERT_TRUE(seed.ok()) << seed.error().message;
  auto first = store->seed_entries(*seed);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->created, 2u);
  auto before = store->list_entries();
  ASSERT_EQ(before.size(), 3u);

  // A restart seeds the same file again: nothing changes, not even revisions.
  store.reset();
  store = open_store();
  auto again = store->seed_entries(*seed);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->unchanged, 2u);
  EXPECT_EQ(again->created + again->updated, 0u);
  EXPECT_EQ(store->list_entries(), before);

  // The operator edits a TTL: that entry is updated in place, same id, next revision.
  (*seed)[1].x509_svid_ttl = 7200s;
  auto edited = store->seed_entries(*seed);
  ASSERT_TRUE(edited.ok());
  EXPECT_EQ(edited->updated, 1u);
  auto after = store->list_entries();
  ASSERT_EQ(after.size(), 3u);
  auto db =
      std::find_if(after.begin(), after.end(), [](const auto& e) { return e.spiffe_id == "spiffe://example.org/db"; });
  EXPECT_EQ(db->x509_svid_ttl, 7200s);
  EXPECT_EQ(db->revision, 2);
  EXPECT_EQ(store->get_entry(manual.id).value(), manual);  // entries not in the file stay

  // One bad entry fails the whole seed and writes nothing.
  auto bad = *seed;
  bad.push_back(entry("spiffe://example.org/new", {"unix:uid:5"}));
  bad.push_back(entry("not-an-id", {"unix:uid:6"}));
  auto failed = store->seed_entries(bad);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message.find("entries[3]"), std::string::npos) << failed.error().message;
  EXPECT_EQ(store->list_entries(), after);
  EXPECT_EQ(raw_int(path_, "SELECT COUNT(*) FROM entries"), 3);
}

}  // namespace
}  // namespace portcullis::attest::authority
