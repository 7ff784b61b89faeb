#include "mtls/verified_chain_cache.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace portcullis::mtls {
namespace {

struct Slot {
  uint64_t context_id = 0;  // 0: empty (context ids start at 1)
  ChainDigest digest{};
  int64_t valid_from = 0;
  int64_t valid_until = 0;
  PeerIdentity identity;
};

std::vector<Slot>& slots() {
  thread_local std::vector<Slot> table(VerifiedChainCache::kSlots);
  return table;
}

Slot& slot_for(uint64_t context_id, const ChainDigest& digest) {
  uint64_t h;
  std::memcpy(&h, digest.data(), sizeof h);  // a SHA-256 prefix is already uniformly spread
  return slots()[(h ^ (context_id * 0x9E3779B97F4A7C15ull)) % VerifiedChainCache::kSlots];
}

}  // namespace

std::optional<PeerIdentity> VerifiedChainCache::lookup(uint64_t context_id, const ChainDigest& digest, int64_t now) {
  const Slot& s = slot_for(context_id, digest);
  if (s.context_id != context_id || s.digest != digest || now < s.valid_from || now > s.valid_until) {
    return std::nullopt;
  }
  return s.identity;
}

void VerifiedChainCache::insert(uint64_t context_id, const ChainDigest& digest, const PeerIdentity& identity,
                                int64_t valid_from, int64_t valid_until, int64_t now) {
  Slot& s = slot_for(context_id, digest);
  s.context_id = context_id;
  s.digest = digest;
  s.valid_from = valid_from;
  s.valid_until = std::min(valid_until, now + kMaxAgeSeconds);
  s.identity = identity;
}

}  // namespace portcullis::mtls
