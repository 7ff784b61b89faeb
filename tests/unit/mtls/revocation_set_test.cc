// RevocationSet lookups and the publisher's snapshots, versions, pruning and watchers.
#include "mtls/revocation_set.h"

#include <gtest/gtest.h>

namespace portcullis::mtls {
namespace {

constexpr int64_t kNow = 1'800'000'000;

std::shared_ptr<const RevocationSet> must_create(std::vector<RevokedSerial> entries, int64_t now = kNow) {
  auto set = RevocationSet::create(std::move(entries), 7, now);
  EXPECT_TRUE(set.ok()) << (set.ok() ? "" : set.error().message);
  return set.ok() ? set.value() : RevocationSet::empty();
}

TEST(RevocationSet, LookupIgnoresCaseAndLeadingZeros) {
  auto set = must_create({{"00AB12", kNow + 60, "spiffe://example.org/a"}, {"ff", kNow + 60, ""}, {"0", kNow + 60, ""}});
  EXPECT_EQ(set->size(), 3u);
  EXPECT_EQ(set->version(), 7u);
  for (const char* serial : {"ab12", "AB12", "0ab12", "000aB12"}) EXPECT_TRUE(set->revoked(serial)) << serial;
  EXPECT_TRUE(set->revoked("FF"));
  EXPECT_TRUE(set->revoked("00"));
  for (const char* serial : {"ab1", "ab123", "1ab12", "fe", "", "zz"}) EXPECT_FALSE(set->revoked(serial)) << serial;
  ASSERT_NE(set->find("ab12"), nullptr);
  EXPECT_EQ(set->find("ab12")->spiffe_id, "spiffe://example.org/a");
  EXPECT_EQ(set->find("ab12")->serial_hex, "ab12");  // stored canonical
}

TEST(RevocationSet, LookupHoldsOverManySerialsOfMixedLengths) {
  std::vector<RevokedSerial> entries;
  for (int i = 1; i < 2000; i += 3) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "%x", i * 7919);
    entries.push_back({hex, kNow + 60, ""});
  }
  auto set = must_create(entries);
  for (int i = 1; i < 2000; ++i) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "%X", i * 7919);
    EXPECT_EQ(set->revoked(hex), i % 3 == 1) << hex;
  }
}

TEST(RevocationSet, DuplicatesKeepTheLaterExpiryAndExpiredEntriesAreDropped) {
  auto set = must_create({{"0a", kNow + 10, ""}, {"A", kNow + 500, ""}, {"b", kNow, ""}, {"c", kNow - 1, ""}});
  ASSERT_EQ(set->size(), 1u);
  EXPECT_EQ(set->entries()[0].expires_at, kNow + 500);
  EXPECT_EQ(set->earliest_expiry(), kNow + 500);
  EXPECT_FALSE(set->revoked("b"));  // expires_at == now: the certificate is no longer valid anyway
  EXPECT_EQ(RevocationSet::empty()->earliest_expiry(), INT64_MAX);
}

TEST(RevocationSet, MalformedSerialsAreRefusedWithTheValue) {
  for (const char* bad : {"", "12g4", "0x12", "12 34"}) {
    auto set = RevocationSet::create({{"01", kNow + 60, ""}, {bad, kNow + 60, ""}}, 1, kNow);
    ASSERT_FALSE(set.ok()) << bad;
    EXPECT_NE(set.error().message.find("serial number"), std::string::npos) << set.error().message;
  }
  EXPECT_FALSE(RevocationSet::create({{std::string(kMaxSerialHexDigits + 1, 'a'), kNow + 60, ""}}, 1, kNow).ok());
  EXPECT_TRUE(RevocationSet::create({{std::string(kMaxSerialHexDigits, 'a'), kNow + 60, ""}}, 1, kNow).ok());
}

class RevocationPublisherTest : public ::testing::Test {
 protected:
  int64_t stat(const std::string& name) const { return stats_.value("revocation." + name).value_or(-1); }

  StatsStore stats_;
  RevocationPublisher publisher_{stats_};
};

TEST_F(RevocationPublisherTest, StartsEmptyAndEachUpdatePublishesANewVersion) {
  auto first = publisher_.current();
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->size(), 0u);
  std::vector<uint64_t> notified;
  auto sub = publisher_.subscribe([&](uint64_t v) { notified.push_back(v); });

  ASSERT_TRUE(publisher_.add({{"aa", kNow + 100, ""}}, kNow).ok());
  ASSERT_TRUE(publisher_.add({{"bb", kNow + 200, ""}}, kNow).ok());
  auto two = publisher_.current();
  EXPECT_TRUE(two->revoked("aa"));
  EXPECT_TRUE(two->revoked("bb"));
  EXPECT_EQ(first->size(), 0u);  // an old snapshot never changes

  ASSERT_TRUE(publisher_.replace({{"cc", kNow + 100, ""}}, kNow).ok());
  EXPECT_FALSE(publisher_.current()->revoked("aa"));
  EXPECT_TRUE(publisher_.current()->revoked("cc"));
  EXPECT_EQ(notified, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(publisher_.current()->version(), 3u);
  EXPECT_EQ(stat("updates"), 3);
  EXPECT_EQ(stat("serials"), 1);
  EXPECT_EQ(stat("version"), 3);

  sub.reset();
  ASSERT_TRUE(publisher_.add({{"dd", kNow + 100, ""}}, kNow).ok());
  EXPECT_EQ(notified.size(), 3u);
}

TEST_F(RevocationPublisherTest, ABadUpdateKeepsTheCurrentSetAndIsCounted) {
  ASSERT_TRUE(publisher_.add({{"aa", kNow + 100, ""}}, kNow).ok());
  int notified = 0;
  auto sub = publisher_.subscribe([&](uint64_t) { ++notified; });
  Status s = publisher_.add({{"bb", kNow + 100, ""}, {"not hex", kNow + 100, ""}}, kNow);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("keeping version 1"), std::string::npos) << s.error().message;
  EXPECT_EQ(publisher_.current()->version(), 1u);
  EXPECT_FALSE(publisher_.current()->revoked("bb"));
  EXPECT_EQ(notified, 0);
  EXPECT_EQ(stat("rejected_updates"), 1);
}

TEST_F(RevocationPublisherTest, PruneDropsExpiredSerialsAndPublishesOnlyWhenItDid) {
  ASSERT_TRUE(publisher_.add({{"aa", kNow + 10, ""}, {"bb", kNow + 20, ""}}, kNow).ok());
  int notified = 0;
  auto sub = publisher_.subscribe([&](uint64_t) { ++notified; });
  EXPECT_EQ(publisher_.prune(kNow + 5), 0u);
  EXPECT_EQ(notified, 0);
  EXPECT_EQ(publisher_.prune(kNow + 10), 1u);
  EXPECT_EQ(notified, 1);
  EXPECT_FALSE(publisher_.current()->revoked("aa"));
  EXPECT_TRUE(publisher_.current()->revoked("bb"));
  // An update prunes too: the expired entry does not survive the merge.
  ASSERT_TRUE(publisher_.add({{"cc", kNow + 100, ""}}, kNow + 30).ok());
  EXPECT_EQ(publisher_.current()->size(), 1u);
  EXPECT_EQ(stat("pruned"), 2);
}

}  // namespace
}  // namespace portcullis::mtls
