#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "common/result.h"
#include "common/stats.h"
#include "portcullis/authority/v1/authority.pb.h"

namespace portcullis::attest::authority {

class UpdateFeed;

// Subscription is one registered watcher of an UpdateFeed; destroying (or reset()ing) it
// unsubscribes. Holds the feed weakly, so it may outlive the feed. Move-only; not thread-safe
// itself (one owner), but unsubscribing races safely with a publish on another thread.
class Subscription {
 public:
  Subscription() = default;
  Subscription(std::weak_ptr<UpdateFeed> feed, uint64_t id) : feed_(std::move(feed)), id_(id) {}
  Subscription(Subscription&& other) noexcept { *this = std::move(other); }
  Subscription& operator=(Subscription&& other) noexcept;
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription() { reset(); }

  void reset();
  bool active() const { return id_ != 0; }

 private:
  std::weak_ptr<UpdateFeed> feed_;
  uint64_t id_ = 0;
};

// UpdateFeed fans AuthorityUpdates (bundle changes, new revocations) out to watchers: every
// sidecar's WatchUpdates stream, or an embedded agent. A watcher first gets a full update (the
// whole bundle and revocation set), then deltas. One mutex orders the two: a change is made and
// delivered under it (publish), and a snapshot is taken and delivered under it (subscribe), so a
// watcher sees each change exactly once — in its snapshot or as a delta, never both or neither.
//
// Threading: thread-safe. Callbacks run on the publishing thread with the feed's lock held, so
// they must be quick and must not call back into the feed: post to a loop and return.
class UpdateFeed : public std::enable_shared_from_this<UpdateFeed> {
 public:
  using Callback = std::function<void(const ::portcullis::authority::v1::AuthorityUpdate&)>;

  static std::shared_ptr<UpdateFeed> create(size_t max_watchers, Gauge& watchers);

  // subscribe builds the full update with `snapshot`, hands it to `callback`, and registers the
  // callback for later deltas. kResourceExhausted when max_watchers are registered already;
  // snapshot's error otherwise.
  Result<Subscription> subscribe(const std::function<Result<::portcullis::authority::v1::AuthorityUpdate>()>& snapshot,
                                 Callback callback);

  // publish runs `change` (e.g. a store write) under the feed's lock and delivers the update it
  // returns, if any, to every watcher. Returns change's status.
  Status publish(const std::function<Result<std::optional<::portcullis::authority::v1::AuthorityUpdate>>()>& change);

  size_t size() const;

  UpdateFeed(size_t max_watchers, Gauge& watchers) : max_watchers_(max_watchers), watchers_gauge_(watchers) {}

 private:
  friend class Subscription;
  void unsubscribe(uint64_t id);

  const size_t max_watchers_;
  Gauge& watchers_gauge_;
  mutable std::mutex mu_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Callback> watchers_;
};

}  // namespace portcullis::attest::authority
