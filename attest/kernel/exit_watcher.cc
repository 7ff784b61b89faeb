#include "attest/kernel/exit_watcher.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace portcullis::attest::kernel {
namespace {
constexpr uint64_t kWakeId = 0;
}  // namespace

Result<std::unique_ptr<ExitWatcher>> ExitWatcher::create() {
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll.valid()) return make_error(ErrorCode::kResourceExhausted, std::string("epoll_create1: ") + std::strerror(errno));
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake.valid()) return make_error(ErrorCode::kResourceExhausted, std::string("eventfd: ") + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeId;
  if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake.get(), &ev) != 0) {
    return make_error(ErrorCode::kInternal, std::string("epoll_ctl(eventfd): ") + std::strerror(errno));
  }
  std::unique_ptr<ExitWatcher> watcher(new ExitWatcher(std::move(epoll), std::move(wake)));
  watcher->thread_ = std::thread([w = watcher.get()] { w->run(); });
  return watcher;
}

ExitWatcher::~ExitWatcher() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

Result<uint64_t> ExitWatcher::watch(const std::shared_ptr<const UniquePidfd>& pidfd, std::function<void()> on_exit) {
  if (!pidfd || !pidfd->valid()) return make_error(ErrorCode::kInvalidArgument, "watch: no pidfd");
  // A dup per watch: epoll keys registrations by fd, so two watches of one pidfd need two fds.
  auto fd = dup_pidfd(pidfd->get());
  if (!fd.ok()) return fd.error();
  std::lock_guard lock(mu_);
  uint64_t id = next_id_++;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = id;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd->get(), &ev) != 0) {
    return make_error(ErrorCode::kInvalidArgument, std::string("epoll_ctl(pidfd): ") + std::strerror(errno));
  }
  watches_.emplace(id, Watch{std::move(*fd), std::move(on_exit)});
  return id;
}

void ExitWatcher::unwatch(uint64_t id) {
  std::unique_lock lock(mu_);
  if (auto it = watches_.find(id); it != watches_.end()) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second.fd.get(), nullptr);
    watches_.erase(it);
  }
  if (std::this_thread::get_id() == thread_.get_id()) return;
  idle_.wait(lock, [&] { return running_ != id; });
}

size_t ExitWatcher::size() const {
  std::lock_guard lock(mu_);
  return watches_.size();
}

void ExitWatcher::run() {
  epoll_event events[64];
  for (;;) {
    int n = ::epoll_wait(epoll_.get(), events, 64, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;  // only EBADF/EINVAL: the fd is ours, so this cannot happen while we live
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kWakeId) {
        std::lock_guard lock(mu_);
        if (stopping_) return;
        continue;
      }
      fire(events[i].data.u64);
    }
  }
}

void ExitWatcher::fire(uint64_t id) {
  std::function<void()> on_exit;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    auto it = watches_.find(id);
    if (it == watches_.end()) return;  // unwatched after epoll_wait returned
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->second.fd.get(), nullptr);
    on_exit = std::move(it->second.on_exit);
    watches_.erase(it);
    running_ = id;
  }
  if (on_exit) on_exit();
  std::lock_guard lock(mu_);
  running_ = 0;
  idle_.notify_all();
}

}  // namespace portcullis::attest::kernel
