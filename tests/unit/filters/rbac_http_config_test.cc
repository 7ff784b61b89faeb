// Config errors of the HTTP matchers (header, url_path), and a check that evaluating them does not
// allocate.
#include <cstdlib>
#include <new>

// The replacement operators below pair malloc with free; GCC cannot see that through inlining.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <gtest/gtest.h>

#include "filters/policy/rbac_engine.h"

namespace {
// Allocations made by this thread while `counting` is set; operator new is replaced for the whole
// test binary, so only the window around evaluate() counts.
thread_local bool counting = false;
thread_local size_t allocations = 0;
}  // namespace

void* operator new(size_t n) {
  if (counting) ++allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace portcullis::filters {
namespace {

// permission_errors compiles one permission (as YAML flow text) inside a minimal policy.
std::vector<std::string> permission_errors(const std::string& rule) {
  config::ErrorList errors;
  std::string yaml = "{policies: {p: {principals: [{any: true}], permissions: [" + rule + "]}}}";
  config::Node node(YAML::Load(yaml), "rules", std::make_shared<const std::string>("r.yaml"));
  EXPECT_FALSE(parse_rbac(node, errors));
  std::vector<std::string> out;
  for (const auto& e : errors.errors()) out.push_back(e.format());
  return out;
}

using Errors = std::vector<std::string>;

TEST(RbacHttpConfig, ReportsBadMatchersWithLocations) {
  EXPECT_EQ(permission_errors("{header: {}}"),
            Errors{"r.yaml:1:67: rules.policies.p.permissions[0].header.name: missing required field"});
  EXPECT_EQ(permission_errors("{header: {name: ''}}"),
            Errors{"r.yaml:1:74: rules.policies.p.permissions[0].header.name: must not be empty"});
  EXPECT_EQ(permission_errors("{header: {name: x, exact_match: a, prefix_match: b}}"),
            Errors{"r.yaml:1:67: rules.policies.p.permissions[0].header: set only one of exact_match, safe_regex_match, range_match, present_match, prefix_match, suffix_match, contains_match or string_match"});
  EXPECT_EQ(permission_errors("{header: {name: x, prefix_match: ''}}"),
            Errors{"r.yaml:1:91: rules.policies.p.permissions[0].header.prefix_match: must not be empty"});
  EXPECT_EQ(permission_errors("{header: {name: x, contains_match: ''}}"),
            Errors{"r.yaml:1:93: rules.policies.p.permissions[0].header.contains_match: must not be empty"});
  EXPECT_EQ(permission_errors("{header: {name: x, safe_regex_match: {regex: '('}}}"),
            Errors{"r.yaml:1:95: rules.policies.p.permissions[0].header.safe_regex_match.regex: invalid RE2 regex: missing ): ("});
  EXPECT_EQ(permission_errors("{header: {name: x, safe_regex_match: {regex: ''}}}"),
            Errors{"r.yaml:1:95: rules.policies.p.permissions[0].header.safe_regex_match.regex: must not be empty"});
  EXPECT_EQ(permission_errors("{header: {name: x, string_match: {}}}"),
            Errors{"r.yaml:1:91: rules.policies.p.permissions[0].header.string_match: set one of exact, prefix, suffix, contains or safe_regex"});
  EXPECT_EQ(permission_errors("{header: {name: x, string_match: {prefix: a, ignore_case: yes, bogus: 1}}}"),
            (Errors{"r.yaml:1:116: rules.policies.p.permissions[0].header.string_match.ignore_case: expected true or false, got 'yes'",
                    "r.yaml:1:121: rules.policies.p.permissions[0].header.string_match.bogus: unknown field 'bogus'"}));
  EXPECT_EQ(permission_errors("{header: {name: x, range_match: {start: 5, end: 5}}}"),
            Errors{"r.yaml:1:90: rules.policies.p.permissions[0].header.range_match: start must be less than end"});
  EXPECT_EQ(permission_errors("{header: {name: x, range_match: {start: 1.5, end: 9}}}"),
            Errors{"r.yaml:1:98: rules.policies.p.permissions[0].header.range_match.start: expected a 64-bit integer"});
  EXPECT_EQ(permission_errors("{header: {name: x, present_match: maybe}}"),
            Errors{"r.yaml:1:92: rules.policies.p.permissions[0].header.present_match: expected true or false, got 'maybe'"});
  EXPECT_EQ(permission_errors("{header: {name: x, presnt_match: true}}"),
            Errors{"r.yaml:1:77: rules.policies.p.permissions[0].header.presnt_match: unknown field 'presnt_match'"});
  EXPECT_EQ(permission_errors("{header: {name: x, invert_match: true, regex_match: a}}"),
            Errors{"r.yaml:1:97: rules.policies.p.permissions[0].header.regex_match: unknown field 'regex_match'"});
  EXPECT_EQ(permission_errors("{header: [x]}"),
            Errors{"r.yaml:1:67: rules.policies.p.permissions[0].header: expected a map, got a list"});
  EXPECT_EQ(permission_errors("{url_path: {}}"),
            Errors{"r.yaml:1:69: rules.policies.p.permissions[0].url_path.path: missing required field"});
  EXPECT_EQ(permission_errors("{url_path: {path: {}}}"),
            Errors{"r.yaml:1:76: rules.policies.p.permissions[0].url_path.path: set one of exact, prefix, suffix, contains or safe_regex"});
  EXPECT_EQ(permission_errors("{url_path: {path: {prefix: /a}, ignore_case: true}}"),
            Errors{"r.yaml:1:90: rules.policies.p.permissions[0].url_path.ignore_case: unknown field 'ignore_case'"});
  EXPECT_EQ(permission_errors("{url_path: {path: {safe_regex: {regex: '/a.*'}, ignore_case: true}}}"),
            Errors{"r.yaml:1:76: rules.policies.p.permissions[0].url_path.path.ignore_case: ignore_case has no effect on safe_regex"});
}

TEST(RbacHttpConfig, PrincipalsTakeTheSameMatchers) {
  config::ErrorList errors;
  config::Node node(YAML::Load("{policies: {p: {permissions: [{any: true}], principals: [{header: {name: x, range_match: {end: -1}}}]}}}"),
                    "rules", std::make_shared<const std::string>("r.yaml"));
  EXPECT_FALSE(parse_rbac(node, errors));
  EXPECT_EQ(errors.format(), "r.yaml:1:90: rules.policies.p.principals[0].header.range_match: start must be less than end\n");
}

TEST(RbacHttpEvaluation, AllocatesNothingAfterWarmUp) {
  config::ErrorList errors;
  config::Node node(YAML::Load(R"({policies: {p: {
      permissions: [{and_rules: {rules: [
        {header: {name: ":method", string_match: {exact: GET}}},
        {url_path: {path: {prefix: /api/, ignore_case: true}}},
        {header: {name: x-fwd, safe_regex_match: {regex: "a,b,c+"}}},
        {header: {name: content-length, range_match: {start: 0, end: 100}}}]}}],
      principals: [{header: {name: x-user, present_match: true}}]}}})"),
                    "rules", std::make_shared<const std::string>("r.yaml"));
  auto engine = parse_rbac(node, errors);
  ASSERT_TRUE(engine) << errors.format();
  std::string long_value(300, 'c');  // the joined value outgrows any small-string buffer
  const FlatHeaderLookup::Entry entries[] = {
      {"x-fwd", "a"}, {"x-fwd", "b"}, {"content-length", "42"}, {"x-fwd", long_value}, {"x-user", "u"}};
  FlatHeaderLookup lookup(entries);
  HttpRequestView http{"GET", "/API/items?page=2", "api.example.org", "https", &lookup};
  RbacInput in;
  in.http = &http;
  ASSERT_TRUE(engine->evaluate(in).allowed);  // warms the per-thread join buffer and RE2's cache
  counting = true;
  allocations = 0;
  RbacDecision d = engine->evaluate(in);
  counting = false;
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.matched_policy, "p");
  EXPECT_EQ(allocations, 0u);
}

}  // namespace
}  // namespace portcullis::filters
