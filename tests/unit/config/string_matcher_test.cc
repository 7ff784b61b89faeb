#include "config/string_matcher.h"

#include <gtest/gtest.h>

namespace portcullis::config {
namespace {

struct MatchCase {
  const char* matcher_yaml;
  const char* input;
  bool expected;
};

void PrintTo(const MatchCase& c, std::ostream* os) { *os << c.matcher_yaml << " ~ '" << c.input << "'"; }

class StringMatcherTable : public ::testing::TestWithParam<MatchCase> {};

TEST_P(StringMatcherTable, Matches) {
  ErrorList errors;
  Node node(YAML::Load(GetParam().matcher_yaml), "m", std::make_shared<const std::string>("t.yaml"));
  auto m = parse_string_matcher(node, errors);
  ASSERT_TRUE(m.has_value()) << errors.format();
  EXPECT_EQ(m->matches(GetParam().input), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    Envoy, StringMatcherTable,
    ::testing::Values(
        MatchCase{"{exact: spiffe://example.org/web}", "spiffe://example.org/web", true},
        MatchCase{"{exact: spiffe://example.org/web}", "spiffe://example.org/web2", false},
        MatchCase{"{exact: ABC, ignore_case: true}", "abc", true},
        MatchCase{"{exact: ABC}", "abc", false},
        MatchCase{"{prefix: spiffe://example.org/}", "spiffe://example.org/ns/a", true},
        MatchCase{"{prefix: spiffe://example.org/}", "spiffe://example.com/ns/a", false},
        MatchCase{"{prefix: SPIFFE://, ignore_case: true}", "spiffe://x/y", true},
        MatchCase{"{prefix: long-prefix}", "long", false},
        MatchCase{"{suffix: /sa/web}", "spiffe://example.org/ns/a/sa/web", true},
        MatchCase{"{suffix: /SA/WEB, ignore_case: true}", "spiffe://x/sa/web", true},
        MatchCase{"{suffix: /sa/web}", "web", false},
        MatchCase{"{contains: /ns/prod/}", "spiffe://example.org/ns/prod/sa/x", true},
        MatchCase{"{contains: /NS/PROD/, ignore_case: true}", "spiffe://example.org/ns/prod/sa/x", true},
        MatchCase{"{exact: ''}", "", true},
        MatchCase{"{safe_regex: {regex: 'spiffe://example\\.org/ns/[a-z]+/sa/web'}}", "spiffe://example.org/ns/prod/sa/web", true},
        MatchCase{"{safe_regex: {regex: 'spiffe://example\\.org/ns/[a-z]+/sa/web'}}", "spiffe://example.org/ns/prod/sa/web/x", false},
        MatchCase{"{safe_regex: {regex: 'b'}}", "abc", false}));

std::string first_error(const char* yaml) {
  ErrorList errors;
  Node node(YAML::Load(yaml), "m", std::make_shared<const std::string>("t.yaml"));
  EXPECT_FALSE(parse_string_matcher(node, errors).has_value());
  return errors.empty() ? "" : errors.errors()[0].format();
}

TEST(StringMatcher, RejectsBadShapes) {
  EXPECT_EQ(first_error("{}"), "t.yaml:1:1: m: set one of exact, prefix, suffix, contains or safe_regex");
  EXPECT_EQ(first_error("{exact: a, prefix: b}"), "t.yaml:1:1: m: set only one of exact, prefix, suffix, contains or safe_regex");
  EXPECT_EQ(first_error("{safe_regex: {regex: '('}}"), "t.yaml:1:14: m.safe_regex.regex: invalid RE2 regex: missing ): (");
  EXPECT_EQ(first_error("{contains: ''}"), "t.yaml:1:1: m.contains: must not be empty");
  EXPECT_EQ(first_error("{safe_regex: {regex: ''}}"), "t.yaml:1:14: m.safe_regex.regex: must not be empty");
  EXPECT_EQ(first_error("{exact: a, typo: 1}"), "t.yaml:1:12: m.typo: unknown field 'typo'");
  EXPECT_EQ(first_error("{safe_regex: {regex: a}, ignore_case: true}"), "t.yaml:1:1: m.ignore_case: ignore_case has no effect on safe_regex");
}

}  // namespace
}  // namespace portcullis::config
