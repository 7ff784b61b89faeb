#include "proxy/buffer_pool.h"

namespace portcullis::proxy {

BufferPool::Buffer BufferPool::acquire(uint32_t size) {
  for (Bucket& b : buckets_) {
    if (b.size == size && !b.free.empty()) {
      Buffer out{std::move(b.free.back()), size};
      b.free.pop_back();
      return out;
    }
  }
  return Buffer{std::make_unique_for_overwrite<uint8_t[]>(size), size};
}

void BufferPool::release(Buffer&& buffer) {
  if (!buffer) return;
  for (Bucket& b : buckets_) {
    if (b.size == buffer.size) {
      if (b.free.size() < max_idle_) b.free.push_back(std::move(buffer.data));
      buffer = Buffer{};
      return;
    }
  }
  buckets_.push_back(Bucket{buffer.size, {}});
  buckets_.back().free.push_back(std::move(buffer.data));
  buffer = Buffer{};
}

size_t BufferPool::idle_count() const {
  size_t n = 0;
  for (const Bucket& b : buckets_) n += b.free.size();
  return n;
}

}  // namespace portcullis::proxy
