#include "config/file_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace portcullis::config {
namespace {

std::string directory_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

Result<FileWatcher> FileWatcher::create(const std::vector<std::string>& files) {
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return make_error(ErrorCode::kIo, std::string("inotify_init1: ") + std::strerror(errno));
  std::set<std::string> dirs;
  for (const auto& f : files) dirs.insert(directory_of(f));
  for (const auto& d : dirs) {
    constexpr uint32_t kMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB;
    if (::inotify_add_watch(fd, d.c_str(), kMask) < 0) {
      int err = errno;
      ::close(fd);
      return make_error(ErrorCode::kIo, "cannot watch " + d + ": " + std::strerror(err));
    }
  }
  return FileWatcher(fd, std::move(dirs));
}

FileWatcher::FileWatcher(FileWatcher&& other) noexcept : fd_(other.fd_), dirs_(std::move(other.dirs_)) { other.fd_ = -1; }

FileWatcher::~FileWatcher() {
  if (fd_ >= 0) ::close(fd_);
}

bool FileWatcher::drain() {
  bool any = false;
  alignas(inotify_event) char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return any;
    // Any entry change in a watched directory may be a new version of a watched file (or of the
    // symlink it resolves through); the caller re-reads and compares contents, so over-reporting
    // costs a reload check, never a wrong result.
    any = true;
  }
}

}  // namespace portcullis::config
