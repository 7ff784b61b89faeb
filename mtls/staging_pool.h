#pragma once

#include <cstdint>
#include <memory>

namespace portcullis::mtls {

// staging_acquire returns a buffer of SocketBio::kStagingBytes from the calling thread's free list
// (allocating only when it is empty); staging_release gives one back. The list keeps a few buffers so
// a busy worker reuses memory instead of calling malloc per batch, and frees the rest so a burst does
// not leave megabytes parked. Any thread may release a buffer another thread acquired.
std::unique_ptr<uint8_t[]> staging_acquire();
void staging_release(std::unique_ptr<uint8_t[]> buffer);

// staging_scratch is the calling thread's buffer that gathers one write batch.
uint8_t* staging_scratch();

}  // namespace portcullis::mtls
