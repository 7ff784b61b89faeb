#include "mtls/svid_store.h"

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

namespace portcullis::mtls {

std::string X509Svid::chain_der() const {
  std::string out;
  for (const auto& der : certificates_der) out += der;
  return out;
}

std::string X509Svid::chain_pem() const {
  std::string out;
  for (const auto& der : certificates_der) out += der_to_pem("CERTIFICATE", der);
  return out;
}

std::string X509Svid::key_pem() const { return der_to_pem("PRIVATE KEY", private_key_pkcs8); }

const TrustBundle* IdentitySnapshot::own_bundle() const {
  auto it = bundles.bundles().find(trust_domain);
  return it == bundles.bundles().end() ? nullptr : it->second.get();
}

std::vector<const TrustBundle*> IdentitySnapshot::federated_bundles() const {
  std::vector<const TrustBundle*> out;
  for (const auto& [name, bundle] : bundles.bundles()) {
    if (name != trust_domain) out.push_back(bundle.get());
  }
  return out;
}

struct SvidSubscription::Entry {
  SvidStore::Callback callback;
  std::mutex call_mu;  // held while the callback runs: reset() from another thread waits on it
  std::atomic<bool> alive{true};
  std::atomic<std::thread::id> running_on{};
  uint64_t id = 0;
};

struct SvidSubscription::Registry {
  mutable std::mutex mu;
  std::map<uint64_t, std::shared_ptr<Entry>> entries;
  uint64_t next_id = 1;
};

SvidSubscription& SvidSubscription::operator=(SvidSubscription&& other) noexcept {
  if (this != &other) {
    reset();
    registry_ = std::move(other.registry_);
    entry_ = std::move(other.entry_);
  }
  return *this;
}

void SvidSubscription::reset() {
  if (!entry_) return;
  if (entry_->running_on.load() == std::this_thread::get_id()) {
    entry_->alive = false;  // inside our own callback: call_mu is ours already
  } else {
    std::lock_guard lock(entry_->call_mu);
    entry_->alive = false;
  }
  if (auto registry = registry_.lock()) {
    std::lock_guard lock(registry->mu);
    registry->entries.erase(entry_->id);
  }
  entry_.reset();
  registry_.reset();
}

SvidWatchers::SvidWatchers() : registry_(std::make_shared<SvidSubscription::Registry>()) {}
SvidWatchers::~SvidWatchers() = default;

SvidSubscription SvidWatchers::subscribe(SvidStore::Callback callback) {
  auto entry = std::make_shared<SvidSubscription::Entry>();
  entry->callback = std::move(callback);
  std::lock_guard lock(registry_->mu);
  entry->id = registry_->next_id++;
  registry_->entries[entry->id] = entry;
  return SvidSubscription(registry_, std::move(entry));
}

void SvidWatchers::notify(uint64_t version) {
  std::vector<std::shared_ptr<SvidSubscription::Entry>> entries;
  {
    // Called outside the registry lock, so a callback may subscribe or unsubscribe.
    std::lock_guard lock(registry_->mu);
    for (const auto& [id, e] : registry_->entries) entries.push_back(e);
  }
  for (const auto& e : entries) {
    std::lock_guard lock(e->call_mu);
    if (!e->alive) continue;
    e->running_on = std::this_thread::get_id();
    e->callback(version);
    e->running_on = std::thread::id{};
  }
}

size_t SvidWatchers::size() const {
  std::lock_guard lock(registry_->mu);
  return registry_->entries.size();
}

}  // namespace portcullis::mtls
