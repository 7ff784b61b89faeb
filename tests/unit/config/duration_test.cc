#include <gtest/gtest.h>

#include "config/node.h"

namespace portcullis::config {
namespace {

using std::chrono::nanoseconds;

struct DurationCase {
  const char* text;
  std::optional<int64_t> ns;
};

void PrintTo(const DurationCase& c, std::ostream* os) { *os << '"' << c.text << '"'; }

class DurationTest : public ::testing::TestWithParam<DurationCase> {};

TEST_P(DurationTest, Parses) {
  auto got = parse_duration(GetParam().text);
  if (!GetParam().ns) {
    EXPECT_FALSE(got.has_value()) << GetParam().text;
  } else {
    ASSERT_TRUE(got.has_value()) << GetParam().text;
    EXPECT_EQ(got->count(), *GetParam().ns) << GetParam().text;
  }
}

INSTANTIATE_TEST_SUITE_P(
    EnvoyForms, DurationTest,
    ::testing::Values(DurationCase{"1s", 1'000'000'000}, DurationCase{"0.5s", 500'000'000},
                      DurationCase{"0.25s", 250'000'000}, DurationCase{"250ms", 250'000'000},
                      DurationCase{"10us", 10'000}, DurationCase{"7ns", 7}, DurationCase{"2m", 120'000'000'000},
                      DurationCase{"1h", 3'600'000'000'000}, DurationCase{"0s", 0},
                      DurationCase{"1.000000001s", 1'000'000'001},
                      // Rejected: no unit, negative, signs, junk, empty, overflow, NaN.
                      DurationCase{"1", std::nullopt}, DurationCase{"-1s", std::nullopt},
                      DurationCase{"+1s", std::nullopt}, DurationCase{"1sec", std::nullopt},
                      DurationCase{"s", std::nullopt}, DurationCase{"", std::nullopt},
                      DurationCase{"1e300s", std::nullopt}, DurationCase{"nans", std::nullopt},
                      DurationCase{"infs", std::nullopt}, DurationCase{"1 s", std::nullopt},
                      DurationCase{"87601h", std::nullopt}, DurationCase{"87600h", 87600LL * 3'600'000'000'000}));

TEST(ReadDuration, AcceptsSecondsNanosMap) {
  ErrorList errors;
  auto yaml = YAML::Load("{seconds: 2, nanos: 5}");
  Node node(yaml, "t", std::make_shared<const std::string>("f.yaml"));
  auto d = read_duration(node, errors);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->count(), 2'000'000'005);
  EXPECT_TRUE(errors.empty()) << errors.format();
}

TEST(ReadDuration, ReportsLocatedErrorForBadString) {
  ErrorList errors;
  auto yaml = YAML::Load("x: 5 parsecs");
  Node root(yaml, "", std::make_shared<const std::string>("f.yaml"));
  MapReader r(root, errors);
  std::chrono::nanoseconds out{};
  EXPECT_FALSE(r.duration("x", &out));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors.errors()[0].format(),
            "f.yaml:1:4: x: invalid duration '5 parsecs' (expected e.g. 1s, 0.5s, 250ms; at most 10 years, not "
            "negative)");
}

}  // namespace
}  // namespace portcullis::config
