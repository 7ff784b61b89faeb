// UpdateFeed: a watcher that subscribes while changes are being published sees every change
// exactly once — in its snapshot or as a delta — and nothing after it unsubscribes.
#include "attest/authority/update_feed.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

namespace portcullis::attest::authority {
namespace {

using ::portcullis::authority::v1::AuthorityUpdate;

TEST(UpdateFeed, EveryChangeExactlyOnceUnderConcurrentSubscribes) {
  StatsStore stats;
  auto feed = UpdateFeed::create(1000, stats.gauge({"t", "", ""}, "watchers"));
  std::atomic<int> committed{0};  // the "store": changes 1..committed exist
  constexpr int kChanges = 2000;
  std::thread publisher([&] {
    for (int i = 1; i <= kChanges; ++i) {
      ASSERT_TRUE(feed->publish([&]() -> Result<std::optional<AuthorityUpdate>> {
                        committed.store(i);
                        AuthorityUpdate u;
                        u.add_revocations()->set_serial(std::to_string(i));
                        return std::optional<AuthorityUpdate>(u);
                      })
                      .ok());
    }
  });
  struct Watcher {
    std::multiset<int> seen;
    Subscription sub;
  };
  std::vector<std::unique_ptr<Watcher>> watchers;
  for (int w = 0; w < 50; ++w) {
    auto watcher = std::make_unique<Watcher>();
    Watcher* raw = watcher.get();
    auto sub = feed->subscribe(
        [&]() -> Result<AuthorityUpdate> {
          AuthorityUpdate full;
          full.set_full_revocation_set(true);
          for (int i = 1; i <= committed.load(); ++i) full.add_revocations()->set_serial(std::to_string(i));
          return full;
        },
        [raw](const AuthorityUpdate& u) {
          for (const auto& r : u.revocations()) raw->seen.insert(std::stoi(r.serial()));
        });
    ASSERT_TRUE(sub.ok());
    watcher->sub = std::move(sub.value());
    watchers.push_back(std::move(watcher));
    std::this_thread::yield();
  }
  publisher.join();
  for (const auto& w : watchers) {
    ASSERT_EQ(w->seen.size(), static_cast<size_t>(kChanges));
    int expected = 1;
    for (int v : w->seen) EXPECT_EQ(v, expected++);
  }
  EXPECT_EQ(stats.value("t.watchers"), 50);
  watchers.front()->sub.reset();
  EXPECT_EQ(feed->size(), 49u);
  size_t before = watchers.front()->seen.size();
  ASSERT_TRUE(feed->publish([] {
                    AuthorityUpdate u;
                    u.add_revocations()->set_serial("0");
                    return Result<std::optional<AuthorityUpdate>>(std::optional<AuthorityUpdate>(u));
                  })
                  .ok());
  EXPECT_EQ(watchers.front()->seen.size(), before);
  EXPECT_EQ(watchers.back()->seen.count(0), 1u);
}

TEST(UpdateFeed, ASubscriptionMayOutliveTheFeed) {
  StatsStore stats;
  Subscription sub;
  {
    auto feed = UpdateFeed::create(1, stats.gauge({"t", "", ""}, "watchers"));
    auto s = feed->subscribe([] { return Result<AuthorityUpdate>(AuthorityUpdate{}); }, [](const AuthorityUpdate&) {});
    ASSERT_TRUE(s.ok());
    sub = std::move(s.value());
    EXPECT_TRUE(sub.active());
  }
  sub.reset();  // the feed is gone: nothing to unsubscribe from, and no crash
  EXPECT_FALSE(sub.active());
}

}  // namespace
}  // namespace portcullis::attest::authority
