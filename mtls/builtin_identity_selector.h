#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/stats.h"
#include "common/stats_macros.h"
#include "mtls/identity_selector.h"

namespace portcullis::mtls {

// `identity.builtin.` stats, shared by every built-in-identity TLS context of the process.
#define PORTCULLIS_BUILTIN_IDENTITY_STATS(COUNTER, GAUGE) \
  COUNTER(context_build_failures)                         \
  COUNTER(contexts_built)                                 \
  COUNTER(unattested_callers)                             \
  COUNTER(unattested_fallbacks)

struct BuiltinIdentityStats {
  PORTCULLIS_BUILTIN_IDENTITY_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE)
  static BuiltinIdentityStats create(StatsStore& store) {
    StatScope scope{"identity", "", ""};
    const std::string prefix = "builtin.";
    return BuiltinIdentityStats{
        PORTCULLIS_BUILTIN_IDENTITY_STATS(PORTCULLIS_MAKE_PREFIXED_COUNTER, PORTCULLIS_MAKE_PREFIXED_GAUGE)};
  }
};

struct BuiltinIdentityOptions {
  // Contexts kept for `default` callers, one per (SPIFFE ID, snapshot version). A context is a few
  // KiB (SSL_CTX, key, chain); a host rarely runs more distinct workloads than this.
  size_t max_cached_contexts = 64;
};

// BuiltinIdentitySelector serves a TLS context whose certificate or validation names the
// built-in identity (TlsContextConfig::certificate_builtin / validation_builtin) from an
// SvidStore:
// - a SPIFFE ID certificate (and a context whose certificate comes from files but whose bundles
//   are ROOTCA/ALL/a trust domain) is one context, built from store->current() and rebuilt when
//   the store publishes: new connections get the new one, live ones keep theirs (as with files);
// - `default` asks `lookup` who the local workload is, takes that caller's view
//   (store->for_caller) and its default SVID, and uses a context cached per (SPIFFE ID, view
//   version) in a bounded cache. A caller nobody can attest, or whom no entry matches, is refused
//   ("unattested caller", identity.builtin.unattested_callers) or, when the config names an
//   unattested_fallback SVID, given that one (identity.builtin.unattested_fallbacks).
// context_for is lock-free on a hit (atomic snapshot loads); building a context takes a mutex.
// Rebuilds run on the store's publishing thread. A failed rebuild keeps the previous context,
// counts identity.builtin.context_build_failures and logs.
class BuiltinIdentitySelector final : public IdentitySelector {
 public:
  // create builds every context that does not depend on the caller now, so a missing SVID or
  // bundle fails at startup with the name, and subscribes to the store.
  static Result<std::shared_ptr<BuiltinIdentitySelector>> create(TlsContextConfig config, std::shared_ptr<SvidStore> store,
                                                                 CallerLookup lookup, BuiltinIdentityOptions options,
                                                                 StatsStore& stats);
  ~BuiltinIdentitySelector() override;

  Result<std::shared_ptr<const TlsContext>> context_for(const ConnectionContext& connection) override;
  bool per_connection() const override {
    return config_.certificate_builtin && config_.certificate_builtin->kind == BuiltinSecret::Kind::kDefault;
  }

  const TlsContextConfig& config() const { return config_; }
  size_t cached_contexts() const { return cache_.load()->size(); }

 private:
  struct KeyLess {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return std::string_view(a.first) != std::string_view(b.first) ? std::string_view(a.first) < std::string_view(b.first)
                                                                    : a.second < b.second;
    }
  };
  using Cache = std::map<std::pair<std::string, uint64_t>, std::shared_ptr<const TlsContext>, KeyLess>;

  BuiltinIdentitySelector(TlsContextConfig config, std::shared_ptr<SvidStore> store, CallerLookup lookup,
                          BuiltinIdentityOptions options, StatsStore& stats);
  // fixed_svid_name is the SVID the fixed context presents: the named one, the fallback of
  // `default`, or "" (certificate from files, or none).
  const std::string& fixed_svid_name() const;
  bool has_fixed_context() const;
  Result<std::shared_ptr<const TlsContext>> build_fixed(const IdentitySnapshot& snapshot) const;
  Result<std::shared_ptr<const TlsContext>> for_caller(const IdentitySnapshot& view);
  void on_store_changed();

  TlsContextConfig config_;
  std::shared_ptr<SvidStore> store_;
  CallerLookup lookup_;
  BuiltinIdentityOptions options_;
  BuiltinIdentityStats stats_;
  std::atomic<std::shared_ptr<const TlsContext>> fixed_;
  std::atomic<std::shared_ptr<const Cache>> cache_;
  std::mutex build_mu_;
  SvidSubscription subscription_;  // last: unsubscribed before anything its callback uses goes
};

// build_builtin_context makes the TlsContext `config` describes with its built-in secrets taken
// from `snapshot`: `svid` as the certificate (null: keep the config's own, if any) and the
// bundles its validation secret names. Fails naming what the snapshot lacks.
Result<std::shared_ptr<const TlsContext>> build_builtin_context(const TlsContextConfig& config,
                                                               const IdentitySnapshot& snapshot, const X509Svid* svid);

// find_svid returns the SVID with this SPIFFE ID in a snapshot, or null.
const X509Svid* find_svid(const IdentitySnapshot& snapshot, std::string_view spiffe_id);

}  // namespace portcullis::mtls
