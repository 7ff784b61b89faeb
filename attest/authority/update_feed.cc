#include "attest/authority/update_feed.h"

namespace portcullis::attest::authority {

using ::portcullis::authority::v1::AuthorityUpdate;

Subscription& Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    reset();
    feed_ = std::move(other.feed_);
    id_ = other.id_;
    other.id_ = 0;
  }
  return *this;
}

void Subscription::reset() {
  if (id_ == 0) return;
  if (auto feed = feed_.lock()) feed->unsubscribe(id_);
  feed_.reset();
  id_ = 0;
}

std::shared_ptr<UpdateFeed> UpdateFeed::create(size_t max_watchers, Gauge& watchers) {
  return std::make_shared<UpdateFeed>(max_watchers, watchers);
}

Result<Subscription> UpdateFeed::subscribe(const std::function<Result<AuthorityUpdate>()>& snapshot,
                                           Callback callback) {
  std::lock_guard lock(mu_);
  if (watchers_.size() >= max_watchers_) {
    return make_error(ErrorCode::kResourceExhausted,
                      "the authority already serves " + std::to_string(max_watchers_) + " watchers (limits.max_watchers)");
  }
  auto full = snapshot();
  if (!full.ok()) return full.error();
  callback(*full);
  uint64_t id = next_id_++;
  watchers_.emplace(id, std::move(callback));
  watchers_gauge_.set(static_cast<int64_t>(watchers_.size()));
  return Subscription(weak_from_this(), id);
}

Status UpdateFeed::publish(const std::function<Result<std::optional<AuthorityUpdate>>()>& change) {
  std::lock_guard lock(mu_);
  auto update = change();
  if (!update.ok()) return update.error();
  if (*update) {
    for (const auto& [id, callback] : watchers_) callback(**update);
  }
  return {};
}

size_t UpdateFeed::size() const {
  std::lock_guard lock(mu_);
  return watchers_.size();
}

void UpdateFeed::unsubscribe(uint64_t id) {
  // The callback is destroyed outside the lock: it may own the last reference to a stream whose
  // destructor takes other locks.
  Callback dropped;
  {
    std::lock_guard lock(mu_);
    auto it = watchers_.find(id);
    if (it == watchers_.end()) return;
    dropped = std::move(it->second);
    watchers_.erase(it);
    watchers_gauge_.set(static_cast<int64_t>(watchers_.size()));
  }
}

}  // namespace portcullis::attest::authority
