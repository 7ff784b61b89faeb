#pragma once

#include <chrono>
#include <functional>

#include <asio/io_context.hpp>

#include "attest/agent/timer.h"

namespace portcullis::proxy {

// AgentTimer is the attestation agent's Timer on the main loop: each after() arms one
// asio::steady_timer that owns itself until it fires. The agent ignores stale tasks, so there is
// no cancellation; tasks pending when the io_context is destroyed are dropped unrun.
class AgentTimer final : public attest::agent::Timer {
 public:
  explicit AgentTimer(asio::io_context& io) : io_(io) {}
  void after(std::chrono::milliseconds delay, std::function<void()> fn) override;
  std::chrono::system_clock::time_point now() const override { return std::chrono::system_clock::now(); }

 private:
  asio::io_context& io_;
};

}  // namespace portcullis::proxy
