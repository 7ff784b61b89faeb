#pragma once

#include "common/stats.h"
#include "common/stats_macros.h"

namespace portcullis::mtls {

// `sds.` stats of the SDS server. responses_sent counts StreamSecrets responses (first answers,
// re-answers after a resource_names change, and rotation pushes) and FetchSecrets replies;
// rotation_pushes is the subset sent because a new identity was published; stale_requests are
// requests whose response_nonce is not the stream's latest (ignored); unknown_resource_errors
// are calls failed with INVALID_ARGUMENT for names the caller cannot have.
#define PORTCULLIS_SDS_STATS(COUNTER, GAUGE) \
  COUNTER(acks)                              \
  COUNTER(nacks)                             \
  COUNTER(responses_sent)                    \
  COUNTER(rotation_pushes)                   \
  COUNTER(stale_requests)                    \
  GAUGE(streams_active)                      \
  COUNTER(unknown_resource_errors)

struct SdsStats {
  PORTCULLIS_SDS_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static SdsStats create(StatsStore& store) {
    StatScope scope{"sds", "", ""};
    return SdsStats{PORTCULLIS_SDS_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};
  }
};

}  // namespace portcullis::mtls
