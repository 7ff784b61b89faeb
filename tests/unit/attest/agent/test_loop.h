#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "attest/agent/timer.h"
#include "common/grpc/call_context.h"

namespace portcullis::attest::agent::testing {

// TestLoop is the agent's "main thread" in tests: one real thread running posted tasks and due
// timers in order, so the agent runs with real time and real concurrency against the watcher
// thread, as in the sidecar.
class TestLoop final : public grpc::Executor, public Timer {
 public:
  TestLoop() : thread_([this] { run(); }) {}
  ~TestLoop() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  void post(std::function<void()> task) override { schedule(std::chrono::steady_clock::now(), std::move(task)); }
  void after(std::chrono::milliseconds delay, std::function<void()> fn) override {
    schedule(std::chrono::steady_clock::now() + delay, std::move(fn));
  }
  std::chrono::system_clock::time_point now() const override { return std::chrono::system_clock::now(); }

  // run_sync runs `fn` on the loop and waits for it.
  template <typename F>
  auto run_sync(F fn) {
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto future = task.get_future();
    post([&task] { task(); });
    return future.get();
  }

 private:
  void schedule(std::chrono::steady_clock::time_point at, std::function<void()> fn) {
    {
      std::lock_guard lock(mu_);
      tasks_.emplace(std::make_pair(at, seq_++), std::move(fn));
    }
    cv_.notify_all();
  }
  void run() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      if (tasks_.empty()) {
        cv_.wait(lock);
        continue;
      }
      auto it = tasks_.begin();
      if (it->first.first > std::chrono::steady_clock::now()) {
        cv_.wait_until(lock, it->first.first);
        continue;
      }
      auto fn = std::move(it->second);
      tasks_.erase(it);
      lock.unlock();
      fn();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::pair<std::chrono::steady_clock::time_point, uint64_t>, std::function<void()>> tasks_;
  uint64_t seq_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace portcullis::attest::agent::testing
