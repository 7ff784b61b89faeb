#include "proxy/buffer_pool.h"

#include <gtest/gtest.h>

namespace portcullis::proxy {
namespace {

TEST(BufferPool, ReusesReleasedBuffersOfTheSameSize) {
  BufferPool pool(2);
  auto a = pool.acquire(4096);
  uint8_t* raw = a.data.get();
  pool.release(std::move(a));
  EXPECT_FALSE(a);
  EXPECT_EQ(pool.idle_count(), 1u);
  auto b = pool.acquire(4096);
  EXPECT_EQ(b.data.get(), raw);
  EXPECT_EQ(pool.idle_count(), 0u);
  auto c = pool.acquire(8192);
  EXPECT_NE(c.data.get(), raw);
  EXPECT_EQ(c.size, 8192u);
}

TEST(BufferPool, KeepsAtMostMaxIdlePerSize) {
  BufferPool pool(2);
  std::vector<BufferPool::Buffer> held;
  for (int i = 0; i < 5; ++i) held.push_back(pool.acquire(1024));
  for (auto& b : held) pool.release(std::move(b));
  EXPECT_EQ(pool.idle_count(), 2u);
  pool.release(BufferPool::Buffer{});  // releasing nothing is harmless
  EXPECT_EQ(pool.idle_count(), 2u);
}

}  // namespace
}  // namespace portcullis::proxy
