#include "mtls/verified_chain_cache.h"

#include <gtest/gtest.h>

#include <thread>

namespace portcullis::mtls {
namespace {

ChainDigest digest_of(uint8_t seed) {
  ChainDigest d{};
  for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<uint8_t>(seed * 31 + i);
  return d;
}

PeerIdentity identity(const std::string& id) { return PeerIdentity{id, "example.org", "0a", 2000}; }

TEST(VerifiedChainCacheTest, AnswersOnlyForTheSameContextAndChainInsideTheWindow) {
  const uint64_t ctx = 1001;
  VerifiedChainCache::insert(ctx, digest_of(1), identity("spiffe://example.org/a"), 100, 200, 150);
  auto hit = VerifiedChainCache::lookup(ctx, digest_of(1), 160);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->spiffe_id, "spiffe://example.org/a");
  EXPECT_FALSE(VerifiedChainCache::lookup(ctx + 1, digest_of(1), 160)) << "another context (rotated bundle)";
  EXPECT_FALSE(VerifiedChainCache::lookup(ctx, digest_of(2), 160)) << "another chain";
  EXPECT_FALSE(VerifiedChainCache::lookup(ctx, digest_of(1), 99)) << "before the chain is valid";
  EXPECT_FALSE(VerifiedChainCache::lookup(ctx, digest_of(1), 201)) << "after the chain expired";
}

TEST(VerifiedChainCacheTest, AVerdictIsReusedForAtMostTheMaximumAge) {
  const uint64_t ctx = 2002;
  const int64_t now = 1000;
  VerifiedChainCache::insert(ctx, digest_of(3), identity("spiffe://example.org/b"), 0, 1'000'000, now);
  EXPECT_TRUE(VerifiedChainCache::lookup(ctx, digest_of(3), now + VerifiedChainCache::kMaxAgeSeconds));
  EXPECT_FALSE(VerifiedChainCache::lookup(ctx, digest_of(3), now + VerifiedChainCache::kMaxAgeSeconds + 1));
}

TEST(VerifiedChainCacheTest, EachThreadHasItsOwnEntries) {
  const uint64_t ctx = 3003;
  VerifiedChainCache::insert(ctx, digest_of(4), identity("spiffe://example.org/c"), 0, 500, 100);
  bool seen_elsewhere = true;
  std::thread([&] { seen_elsewhere = VerifiedChainCache::lookup(ctx, digest_of(4), 100).has_value(); }).join();
  EXPECT_FALSE(seen_elsewhere);
  EXPECT_TRUE(VerifiedChainCache::lookup(ctx, digest_of(4), 100));
}

}  // namespace
}  // namespace portcullis::mtls
