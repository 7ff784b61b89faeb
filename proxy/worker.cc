#include "proxy/worker.h"

#include <pthread.h>

#include <spdlog/spdlog.h>

namespace portcullis::proxy {

Worker::Worker(size_t index) : index_(index) {}

Worker::~Worker() { stop(); }

void Worker::start() {
  guard_.emplace(io_.get_executor());
  thread_ = std::thread([this] {
    std::string name = "worker_" + std::to_string(index_);
    pthread_setname_np(pthread_self(), name.c_str());
    for (;;) {
      try {
        io_.run();
        return;
      } catch (const std::exception& e) {
        // A handler threw: log it and keep serving the other connections on this worker.
        spdlog::error("worker {}: unexpected exception in event loop: {}", index_, e.what());
      }
    }
  });
}

void Worker::stop() {
  if (!thread_.joinable()) return;
  post([this] {
    connections_.close_all();
    guard_.reset();
  });
  thread_.join();
}

}  // namespace portcullis::proxy
