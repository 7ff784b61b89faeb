#include <asio/io_context.hpp>
#include <gtest/gtest.h>

#include "proxy/admin_server.h"

namespace portcullis::proxy {
namespace {

TEST(ParseAdminTarget, SplitsPathAndDecodesQuery) {
  AdminRequest r;
  parse_admin_target("/stats?filter=cluster%2Eb&format=json&flag&a+b=c+d&bad=%zz", r);
  EXPECT_EQ(r.path, "/stats");
  EXPECT_EQ(r.query["filter"], "cluster.b");
  EXPECT_EQ(r.query["format"], "json");
  EXPECT_EQ(r.query["flag"], "");
  EXPECT_EQ(r.query["a b"], "c d");
  EXPECT_EQ(r.query["bad"], "%zz");
}

TEST(ParseAdminTarget, TrailingPercentIsKeptLiterally) {
  AdminRequest r;
  parse_admin_target("/x%?a=%4", r);
  EXPECT_EQ(r.path, "/x%");
  EXPECT_EQ(r.query["a"], "%4");
}

TEST(AdminDispatch, PostOnlyRejectsGetWith400AndUnknownPathIs404) {
  asio::io_context io;
  StatsStore stats;
  AdminServer admin(io, stats, 4096);
  int calls = 0;
  admin.add_route({"/quitquitquit", "quit", true, [&](const AdminRequest&) {
                     ++calls;
                     return AdminResponse{200, "text/plain", "OK\n"};
                   }});
  EXPECT_EQ(admin.dispatch({"GET", "/quitquitquit", {}}).status, 400);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(admin.dispatch({"POST", "/quitquitquit", {}}).status, 200);
  EXPECT_EQ(calls, 1);
  auto missing = admin.dispatch({"GET", "/nope", {}});
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(missing.body.find("/quitquitquit (POST)"), std::string::npos);
}

}  // namespace
}  // namespace portcullis::proxy
