#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "mtls/peer_identity.h"

namespace portcullis::mtls {

// ChainDigest is the SHA-256 over a presented chain's DER certificates (each length-prefixed).
using ChainDigest = std::array<uint8_t, 32>;

// VerifiedChainCache remembers, per thread, which exact chains a TLS context has already verified
// and the identity they yielded, so a peer that reconnects with the same certificates is not
// re-verified (an ECDSA verification, certificate parsing and path building: about a fifth of a
// full handshake's CPU, and all of a resumption's verification). The handshake still proves the
// peer holds the key (CertificateVerify), so only the chain's verdict is reused.
//
// An entry is keyed by the context's unique id (a rotation or reload makes a new context, so a new
// bundle or matcher never reuses an old verdict) and the chain digest, and is used only inside the
// chain's validity window and for at most kMaxAge after it was verified. Only successes are kept.
// Direct-mapped with kSlots entries: fixed memory per thread, no locks, no eviction bookkeeping.
class VerifiedChainCache {
 public:
  static constexpr size_t kSlots = 256;
  static constexpr int64_t kMaxAgeSeconds = 60;

  // lookup returns the identity if context `context_id` verified this chain and `now` (Unix
  // seconds) is inside the window stored with it.
  static std::optional<PeerIdentity> lookup(uint64_t context_id, const ChainDigest& digest, int64_t now);
  // insert records a verified chain, usable from `valid_from` until `valid_until` (Unix seconds,
  // already including any clock-skew allowance; capped at now + kMaxAgeSeconds).
  static void insert(uint64_t context_id, const ChainDigest& digest, const PeerIdentity& identity,
                     int64_t valid_from, int64_t valid_until, int64_t now);
};

}  // namespace portcullis::mtls
