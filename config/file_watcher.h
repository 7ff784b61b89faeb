#pragma once

#include <set>
#include <string>
#include <vector>

#include "common/result.h"

namespace portcullis::config {

// FileWatcher reports changes to a set of files through one inotify fd. It watches the files'
// directories rather than the files, so an atomic rename over a file and Kubernetes' `..data`
// symlink swap (which replaces the directory entry, not the file) are both seen. The caller
// polls fd() for readability (from its event loop) and then calls drain(). Not thread-safe.
class FileWatcher {
 public:
  static Result<FileWatcher> create(const std::vector<std::string>& files);
  FileWatcher(FileWatcher&& other) noexcept;
  FileWatcher& operator=(FileWatcher&&) = delete;
  ~FileWatcher();

  int fd() const { return fd_; }
  // drain reads every pending event; true if any may concern a watched file.
  bool drain();
  const std::set<std::string>& directories() const { return dirs_; }

 private:
  FileWatcher(int fd, std::set<std::string> dirs) : fd_(fd), dirs_(std::move(dirs)) {}
  int fd_;
  std::set<std::string> dirs_;
};

}  // namespace portcullis::config
