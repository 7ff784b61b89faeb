#include "mtls/staging_pool.h"

#include <vector>

#include "mtls/socket_bio.h"

namespace portcullis::mtls {
namespace {

constexpr size_t kMaxCachedBuffers = 16;

std::vector<std::unique_ptr<uint8_t[]>>& free_list() {
  thread_local std::vector<std::unique_ptr<uint8_t[]>> list;
  return list;
}

}  // namespace

std::unique_ptr<uint8_t[]> staging_acquire() {
  auto& list = free_list();
  if (list.empty()) return std::make_unique_for_overwrite<uint8_t[]>(SocketBio::kStagingBytes);
  std::unique_ptr<uint8_t[]> out = std::move(list.back());
  list.pop_back();
  return out;
}

void staging_release(std::unique_ptr<uint8_t[]> buffer) {
  auto& list = free_list();
  if (buffer && list.size() < kMaxCachedBuffers) list.push_back(std::move(buffer));
}

uint8_t* staging_scratch() {
  thread_local std::unique_ptr<uint8_t[]> scratch = std::make_unique_for_overwrite<uint8_t[]>(SocketBio::kStagingBytes);
  return scratch.get();
}

}  // namespace portcullis::mtls
