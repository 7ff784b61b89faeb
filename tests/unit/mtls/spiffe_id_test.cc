#include "mtls/spiffe_id.h"

#include <fstream>

#include <gtest/gtest.h>

namespace portcullis::mtls {
namespace {

struct IdCase {
  std::string id;
  std::string error;  // empty: must parse
  int line;
};

void PrintTo(const IdCase& c, std::ostream* os) { *os << "line " << c.line << ": '" << c.id << "'"; }

// Table lines may spell bytes as \xHH so non-ASCII input stays readable.
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] == 'x') {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 2, 2), nullptr, 16)));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<IdCase> load_table() {
  std::ifstream in(std::string(PORTCULLIS_TESTDATA) + "/mtls/testdata/spiffe_ids.txt");
  std::vector<IdCase> out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    if (line.starts_with("ok ")) {
      out.push_back({unescape(line.substr(3)), "", n});
    } else if (line.starts_with("bad ")) {
      size_t bar = line.find(" | ");
      out.push_back({unescape(line.substr(bar + 3)), line.substr(4, bar - 4), n});
    }
  }
  return out;
}

class SpiffeIdTable : public ::testing::TestWithParam<IdCase> {};

TEST_P(SpiffeIdTable, ParsesOrRejectsWithReason) {
  const IdCase& c = GetParam();
  auto id = SpiffeId::parse(c.id);
  if (c.error.empty()) {
    ASSERT_TRUE(id.ok()) << id.error().message;
    EXPECT_EQ(id->str(), c.id);
  } else {
    ASSERT_FALSE(id.ok()) << "accepted " << c.id;
    EXPECT_NE(id.error().message.find(c.error), std::string::npos) << id.error().message;
  }
}

INSTANTIATE_TEST_SUITE_P(Table, SpiffeIdTable, ::testing::ValuesIn(load_table()));

TEST(SpiffeId, TableIsNotEmpty) { EXPECT_GT(load_table().size(), 30u); }

TEST(SpiffeId, SplitsTrustDomainAndPath) {
  auto id = SpiffeId::parse("spiffe://example.org/ns/default/sa/web");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->trust_domain(), "example.org");
  EXPECT_EQ(id->path(), "/ns/default/sa/web");
  EXPECT_FALSE(id->is_trust_domain_id());
  EXPECT_TRUE(id->member_of("example.org"));
  EXPECT_FALSE(id->member_of("example.com"));
  auto td = SpiffeId::from_trust_domain("example.org");
  ASSERT_TRUE(td.ok());
  EXPECT_EQ(td->str(), "spiffe://example.org");
  EXPECT_TRUE(td->is_trust_domain_id());
}

TEST(SpiffeId, LengthLimits) {
  std::string prefix = "spiffe://example.org/";
  EXPECT_TRUE(SpiffeId::parse(prefix + std::string(SpiffeId::kMaxLength - prefix.size(), 'a')).ok());
  auto too_long = SpiffeId::parse(prefix + std::string(SpiffeId::kMaxLength - prefix.size() + 1, 'a'));
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.error().message, "SPIFFE ID is longer than 2048 bytes");
  EXPECT_TRUE(SpiffeId::parse("spiffe://" + std::string(255, 'a')).ok());
  EXPECT_FALSE(SpiffeId::parse("spiffe://" + std::string(256, 'a')).ok());
  EXPECT_FALSE(SpiffeId::from_trust_domain("Example.org").ok());
}

}  // namespace
}  // namespace portcullis::mtls
