#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "attest/kernel/pidfd.h"
#include "common/result.h"

namespace portcullis::attest::kernel {

// ExitWatcher calls back when processes exit. It owns one thread blocked in epoll_wait on the
// watched pidfds (a pidfd turns readable when its process exits) and an eventfd that wakes it to
// stop. Each watch fires at most once, on the watcher thread, so callbacks must be quick and must
// only post work elsewhere (they may call unwatch, or watch, themselves). A process that has
// already exited fires right after watch(). watch/unwatch are thread-safe; the destructor stops
// and joins the thread, and pending watches never fire.
class ExitWatcher {
 public:
  // create fails when the epoll instance or the eventfd cannot be made (fd limits).
  static Result<std::unique_ptr<ExitWatcher>> create();
  ~ExitWatcher();
  ExitWatcher(const ExitWatcher&) = delete;
  ExitWatcher& operator=(const ExitWatcher&) = delete;

  // watch registers `on_exit` for the process of `pidfd` (duplicated: the caller's copy may be
  // closed at any time). Returns the watch id (never 0); fails for an invalid fd.
  Result<uint64_t> watch(const std::shared_ptr<const UniquePidfd>& pidfd, std::function<void()> on_exit);

  // unwatch cancels a watch. When it returns the callback will not start; if it is running on the
  // watcher thread, unwatch (from any other thread) waits for it to finish, so do not hold a lock
  // the callback takes. Unknown or fired ids are ignored.
  void unwatch(uint64_t id);

  size_t size() const;

 private:
  struct Watch {
    UniqueFd fd;
    std::function<void()> on_exit;
  };
  ExitWatcher(UniqueFd epoll, UniqueFd wake) : epoll_(std::move(epoll)), wake_(std::move(wake)) {}
  void run();
  void fire(uint64_t id);

  UniqueFd epoll_;
  UniqueFd wake_;
  mutable std::mutex mu_;
  std::condition_variable idle_;
  std::map<uint64_t, Watch> watches_;
  uint64_t next_id_ = 1;
  uint64_t running_ = 0;  // id whose callback runs now; 0 = none
  bool stopping_ = false;
  std::thread thread_;  // last: started after every other member exists
};

}  // namespace portcullis::attest::kernel
