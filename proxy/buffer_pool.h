#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace portcullis::proxy {

// BufferPool hands out fixed-size byte buffers to the connections of one worker. A connection
// holds a buffer only while bytes are in flight and returns it when its side goes idle, so idle
// connections cost no buffer memory. Worker-local: no locks, never touched by two threads.
class BufferPool {
 public:
  struct Buffer {
    std::unique_ptr<uint8_t[]> data;
    uint32_t size = 0;
    explicit operator bool() const { return data != nullptr; }
  };

  // max_idle bounds how many returned buffers of one size are kept for reuse.
  explicit BufferPool(size_t max_idle = 256) : max_idle_(max_idle) {}

  Buffer acquire(uint32_t size);
  void release(Buffer&& buffer);
  size_t idle_count() const;

 private:
  struct Bucket {
    uint32_t size;
    std::vector<std::unique_ptr<uint8_t[]>> free;
  };
  size_t max_idle_;
  std::vector<Bucket> buckets_;  // a handful of sizes at most: one per configured buffer limit
};

}  // namespace portcullis::proxy
