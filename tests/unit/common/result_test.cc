#include "common/result.h"

#include <gtest/gtest.h>

namespace portcullis {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return make_error(ErrorCode::kInvalidArgument, "not positive: " + std::to_string(v));
  return v;
}

TEST(Result, CarriesValueOrError) {
  auto good = parse_positive(3);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 3);
  auto bad = parse_positive(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message, "not positive: -1");
  EXPECT_STREQ(error_code_name(bad.error().code), "invalid_argument");
}

TEST(Status, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  Status f = make_error(ErrorCode::kIo, "disk");
  EXPECT_FALSE(f.ok());
  EXPECT_EQ(f.error().message, "disk");
}

}  // namespace
}  // namespace portcullis
