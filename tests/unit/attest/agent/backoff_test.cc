#include "attest/agent/backoff.h"

#include <gtest/gtest.h>

namespace portcullis::attest::agent {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, DoublesWithFullJitterUpToTheCapAndResets) {
  Backoff b(milliseconds(200), milliseconds(1000));
  const int64_t caps[] = {200, 400, 800, 1000, 1000, 1000};
  for (int64_t cap : caps) {
    auto d = b.next().count();
    EXPECT_GE(d, cap / 2);
    EXPECT_LE(d, cap);
  }
  b.reset();
  EXPECT_LE(b.next().count(), 200);
}

TEST(Backoff, JitterSpreadsRetries) {
  // Many sidecars backing off from the same outage must not retry in lockstep.
  Backoff a(milliseconds(30000), milliseconds(30000)), b(milliseconds(30000), milliseconds(30000));
  int same = 0;
  for (int i = 0; i < 20; ++i) same += a.next() == b.next();
  EXPECT_LT(same, 5);
}

}  // namespace
}  // namespace portcullis::attest::agent
