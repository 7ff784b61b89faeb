// Table-driven: testdata/endpoint_uris.yaml lists SPIFFE_ENDPOINT_SOCKET values and what each must
// parse to, or why it is rejected.
#include "attest/workload_api/endpoint_uri.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

namespace portcullis::attest {
namespace {

struct UriCase {
  std::string uri, pipe, tcp, error;
};

std::vector<UriCase> load_cases() {
  YAML::Node table = YAML::LoadFile(std::string(PORTCULLIS_TESTDATA) + "/attest/testdata/endpoint_uris.yaml");
  std::vector<UriCase> out;
  for (const auto& c : table["cases"]) {
    out.push_back({c["uri"].as<std::string>(), c["pipe"].as<std::string>(""), c["tcp"].as<std::string>(""),
                   c["error"].as<std::string>("")});
  }
  return out;
}

void PrintTo(const UriCase& c, std::ostream* os) { *os << "'" << c.uri << "'"; }

class EndpointUriTest : public ::testing::TestWithParam<UriCase> {};

TEST_P(EndpointUriTest, ParsesOrRejectsPerTheSpec) {
  const UriCase& c = GetParam();
  auto got = parse_spiffe_endpoint_uri(c.uri);
  if (!c.error.empty()) {
    ASSERT_FALSE(got.ok()) << "accepted: " << got->to_string();
    EXPECT_NE(got.error().message.find(c.error), std::string::npos) << got.error().message;
    EXPECT_NE(got.error().message.find("invalid SPIFFE endpoint URI"), std::string::npos);
    return;
  }
  ASSERT_TRUE(got.ok()) << got.error().message;
  if (!c.pipe.empty()) {
    ASSERT_NE(got->pipe(), nullptr);
    EXPECT_EQ(got->pipe()->path, c.pipe);
  } else {
    ASSERT_NE(got->socket(), nullptr);
    EXPECT_EQ(got->socket()->to_string(), c.tcp);
  }
}

INSTANTIATE_TEST_SUITE_P(Table, EndpointUriTest, ::testing::ValuesIn(load_cases()));

}  // namespace
}  // namespace portcullis::attest
