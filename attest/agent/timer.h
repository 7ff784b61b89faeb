#pragma once

#include <chrono>
#include <functional>

namespace portcullis::attest::agent {

// Timer is the agent's only source of time: a clock and one-shot delayed tasks. common/ has no
// timer and attest/ may not use Asio, so the proxy implements it over an asio::steady_timer on the
// main loop, and tests use a real-thread loop (tests/unit/attest/agent/test_loop.h) or a manual
// clock.
//
// after(delay, fn) runs `fn` once, on the agent's executor (the same loop that delivers
// AuthorityApi callbacks), no earlier than `delay` from now; never inline. There is no
// cancellation: the agent guards each task with a generation number and ignores stale ones, so an
// implementation may drop a task only at shutdown. now() is wall-clock time, the scale that SVID
// not_after values are on.
class Timer {
 public:
  virtual ~Timer() = default;
  virtual void after(std::chrono::milliseconds delay, std::function<void()> fn) = 0;
  virtual std::chrono::system_clock::time_point now() const = 0;
};

}  // namespace portcullis::attest::agent
