#include "mtls/builtin_identity_selector.h"

#include <spdlog/spdlog.h>

namespace portcullis::mtls {
namespace {

std::string describe(const CallerInfo& caller) {
  std::string out;
  if (caller.pid) out += "pid " + std::to_string(*caller.pid);
  if (caller.uid) out += (out.empty() ? "" : " ") + std::string("uid ") + std::to_string(*caller.uid);
  if (!caller.selectors.empty()) out += (out.empty() ? "" : " ") + std::to_string(caller.selectors.size()) + " selectors";
  return out.empty() ? "unknown process" : out;
}

Status add_bundle(const TrustBundle* bundle, std::string_view what, TlsContextConfig& out) {
  if (bundle == nullptr) return make_error(ErrorCode::kNotFound, "the identity holds no bundle for " + std::string(what));
  out.trust_domains.push_back(TrustDomainSource{bundle->trust_domain(), DataSource{"", bundle->authorities_pem()}});
  return {};
}

}  // namespace

const X509Svid* find_svid(const IdentitySnapshot& snapshot, std::string_view spiffe_id) {
  for (const auto& svid : snapshot.svids) {
    if (svid.spiffe_id == spiffe_id) return &svid;
  }
  return nullptr;
}

Result<std::shared_ptr<const TlsContext>> build_builtin_context(const TlsContextConfig& config,
                                                               const IdentitySnapshot& snapshot, const X509Svid* svid) {
  TlsContextConfig out = config;
  out.certificate_builtin.reset();
  out.validation_builtin.reset();
  if (svid != nullptr) {
    out.certificate_sds.reset();
    out.certificate_chain = DataSource{"", svid->chain_pem()};
    out.private_key = DataSource{"", svid->key_pem()};
  }
  if (const auto& v = config.validation_builtin) {
    out.validation_sds.reset();
    Status s;
    switch (v->kind) {
      case BuiltinSecret::Kind::kRootCa:
        s = add_bundle(snapshot.own_bundle(), "our trust domain " + snapshot.trust_domain, out);
        break;
      case BuiltinSecret::Kind::kAllBundles:
        for (const auto& [name, bundle] : snapshot.bundles.bundles()) {
          if (s.ok()) s = add_bundle(bundle.get(), name, out);
        }
        if (s.ok() && out.trust_domains.empty()) s = add_bundle(nullptr, "any trust domain", out);
        break;
      case BuiltinSecret::Kind::kTrustDomain: {
        std::string_view td = std::string_view(v->name).substr(std::string_view("spiffe://").size());
        s = add_bundle(snapshot.bundles.find(td), v->name, out);
        break;
      }
      default:
        s = make_error(ErrorCode::kInvalidArgument, "'" + v->name + "' is not a validation secret");
    }
    if (!s.ok()) return s.error();
  }
  return TlsContext::create(out);
}

BuiltinIdentitySelector::BuiltinIdentitySelector(TlsContextConfig config, std::shared_ptr<SvidStore> store,
                                                 CallerLookup lookup, BuiltinIdentityOptions options, StatsStore& stats)
    : config_(std::move(config)),
      store_(std::move(store)),
      lookup_(std::move(lookup)),
      options_(options),
      stats_(BuiltinIdentityStats::create(stats)),
      cache_(std::make_shared<const Cache>()) {}

BuiltinIdentitySelector::~BuiltinIdentitySelector() { subscription_.reset(); }

Result<std::shared_ptr<BuiltinIdentitySelector>> BuiltinIdentitySelector::create(TlsContextConfig config,
                                                                                 std::shared_ptr<SvidStore> store,
                                                                                 CallerLookup lookup,
                                                                                 BuiltinIdentityOptions options,
                                                                                 StatsStore& stats) {
  if (!store) return make_error(ErrorCode::kFailedPrecondition, "the built-in identity needs the identity block");
  std::shared_ptr<BuiltinIdentitySelector> selector(
      new BuiltinIdentitySelector(std::move(config), std::move(store), std::move(lookup), options, stats));
  // Subscribe first, then read: a publication in between is not lost.
  selector->subscription_ = selector->store_->subscribe([raw = selector.get()](uint64_t) { raw->on_store_changed(); });
  if (selector->has_fixed_context()) {
    auto snapshot = selector->store_->current();
    if (!snapshot) return make_error(ErrorCode::kUnavailable, "the built-in identity has no SVID yet");
    auto ctx = selector->build_fixed(*snapshot);
    if (!ctx.ok()) return ctx.error();
    selector->fixed_.store(std::move(ctx.value()));
  }
  return selector;
}

const std::string& BuiltinIdentitySelector::fixed_svid_name() const {
  static const std::string none;
  const auto& cert = config_.certificate_builtin;
  if (!cert) return none;
  return cert->kind == BuiltinSecret::Kind::kDefault ? cert->unattested_fallback : cert->name;
}

bool BuiltinIdentitySelector::has_fixed_context() const {
  return !config_.certificate_builtin || !fixed_svid_name().empty();
}

Result<std::shared_ptr<const TlsContext>> BuiltinIdentitySelector::build_fixed(const IdentitySnapshot& snapshot) const {
  const X509Svid* svid = nullptr;
  if (const std::string& name = fixed_svid_name(); !name.empty()) {
    svid = find_svid(snapshot, name);
    if (svid == nullptr) return make_error(ErrorCode::kNotFound, "the identity holds no SVID " + name);
  }
  return build_builtin_context(config_, snapshot, svid);
}

void BuiltinIdentitySelector::on_store_changed() {
  if (!has_fixed_context()) return;  // `default` contexts are keyed by view version: new ones build on demand
  auto snapshot = store_->current();
  if (!snapshot) return;
  auto ctx = build_fixed(*snapshot);
  if (!ctx.ok()) {
    stats_.context_build_failures.inc();
    spdlog::error("built-in identity: keeping the previous TLS context: {}", ctx.error().message);
    return;
  }
  stats_.contexts_built.inc();
  fixed_.store(std::move(ctx.value()));
}

Result<std::shared_ptr<const TlsContext>> BuiltinIdentitySelector::context_for(const ConnectionContext& connection) {
  if (!per_connection()) return fixed_.load();
  std::optional<CallerInfo> caller = lookup_ ? lookup_(connection) : std::nullopt;
  std::string why;
  if (!caller) {
    why = connection.side == ConnectionContext::Side::kCluster ? "the calling process could not be attested"
                                                               : "the process behind the upstream endpoint could not be attested";
  } else if (auto view = store_->for_caller(*caller); !view) {
    // The store cannot tell an unmatched caller from one whose SVIDs could not be issued or
    // expired while the authority was away; agent.* stats and /ready say which.
    why = describe(*caller) + " matches no registration entry with a valid SVID (none matched, or issuance failed or expired)";
  } else if (view->default_svid() == nullptr) {
    why = describe(*caller) + " is entitled to no X.509-SVID";
  } else {
    return for_caller(*view);
  }
  if (auto fallback = fixed_.load()) {
    stats_.unattested_fallbacks.inc();
    return fallback;
  }
  stats_.unattested_callers.inc();
  return make_error(ErrorCode::kPermissionDenied, "unattested caller: " + why);
}

Result<std::shared_ptr<const TlsContext>> BuiltinIdentitySelector::for_caller(const IdentitySnapshot& view) {
  const X509Svid& svid = *view.default_svid();
  const std::pair<std::string_view, uint64_t> key{svid.spiffe_id, view.version};
  {
    auto cache = cache_.load();
    if (auto it = cache->find(key); it != cache->end()) return it->second;
  }
  std::lock_guard lock(build_mu_);
  auto cache = cache_.load();  // another worker may have built it meanwhile
  if (auto it = cache->find(key); it != cache->end()) return it->second;
  auto ctx = build_builtin_context(config_, view, &svid);
  if (!ctx.ok()) {
    stats_.context_build_failures.inc();
    return make_error(ctx.error().code, "TLS context for " + svid.spiffe_id + ": " + ctx.error().message);
  }
  stats_.contexts_built.inc();
  // Copy-on-write: readers keep the map they loaded. An older version of the same ID is dead
  // weight once a newer one exists; beyond the bound the smallest key goes.
  auto next = std::make_shared<Cache>(*cache);
  std::erase_if(*next, [&](const auto& entry) { return entry.first.first == svid.spiffe_id; });
  while (!next->empty() && next->size() >= options_.max_cached_contexts) next->erase(next->begin());
  next->emplace(std::pair<std::string, uint64_t>{svid.spiffe_id, view.version}, ctx.value());
  cache_.store(std::move(next));
  return ctx.value();
}

}  // namespace portcullis::mtls
