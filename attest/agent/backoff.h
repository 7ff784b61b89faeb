#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace portcullis::attest::agent {

// Backoff is capped, jittered exponential: the n-th delay is drawn uniformly from [d/2, d] with
// d = min(initial × 2^n, max), so many sidecars that lost the same authority do not reconnect in
// lockstep. reset() after a success. Not thread-safe (one per retry loop, on the agent's loop).
class Backoff {
 public:
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max)
      : initial_(initial), max_(max), next_(initial), rng_(std::random_device{}()) {}

  std::chrono::milliseconds next() {
    auto d = next_;
    next_ = std::min(max_, next_ * 2);
    std::uniform_int_distribution<int64_t> dist(d.count() / 2, d.count());
    return std::chrono::milliseconds(dist(rng_));
  }
  void reset() { next_ = initial_; }

 private:
  std::chrono::milliseconds initial_, max_, next_;
  std::mt19937_64 rng_;
};

}  // namespace portcullis::attest::agent
