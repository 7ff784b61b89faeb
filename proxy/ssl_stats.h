#pragma once

#include <array>

#include "common/stats.h"
#include "common/stats_macros.h"
#include "mtls/x509_svid_verifier.h"

namespace portcullis::proxy {

// Envoy's TLS stats under `listener.<addr>.ssl.` / `cluster.<name>.ssl.`, plus one counter per
// X.509-SVID rejection reason (`ssl.fail_verify_spiffe.<reason>`).
#define PORTCULLIS_SSL_STATS(COUNTER, GAUGE) \
  COUNTER(connection_error)                  \
  COUNTER(fail_verify_error)                 \
  COUNTER(fail_verify_san)                   \
  COUNTER(handshake)                         \
  COUNTER(handshake_timeout)                 \
  COUNTER(no_certificate)                    \
  COUNTER(session_reused)

inline constexpr size_t kSvidRejectionCount = static_cast<size_t>(mtls::SvidRejection::kRevoked) + 1;

struct SslStats {
  PORTCULLIS_SSL_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  std::array<Counter*, kSvidRejectionCount> rejected;

  void count_rejection(mtls::SvidRejection reason) const;

  static SslStats create(StatsStore& store, const StatScope& scope) {
    const std::string prefix = "ssl.";
    SslStats s{PORTCULLIS_SSL_STATS(PORTCULLIS_MAKE_PREFIXED_COUNTER, PORTCULLIS_MAKE_PREFIXED_GAUGE){}};
    for (size_t i = 0; i < kSvidRejectionCount; ++i) {
      s.rejected[i] = &store.counter(
          scope, "ssl.fail_verify_spiffe." + std::string(mtls::svid_rejection_name(static_cast<mtls::SvidRejection>(i))));
    }
    return s;
  }
};

inline void SslStats::count_rejection(mtls::SvidRejection reason) const {
  rejected[static_cast<size_t>(reason)]->inc();
  if (reason == mtls::SvidRejection::kNoCertificate) no_certificate.inc();
  else if (reason == mtls::SvidRejection::kSanMismatch) fail_verify_san.inc();
  else fail_verify_error.inc();
}

}  // namespace portcullis::proxy
