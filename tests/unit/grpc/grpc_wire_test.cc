// I/O-free gRPC wire helpers: message framing edge cases, grpc-timeout, grpc-message encoding,
// content-type, and the `limits:` config block.
#include <gtest/gtest.h>

#include "config/yaml_file.h"
#include "proxy/grpc/grpc_server_limits.h"
#include "proxy/grpc/grpc_wire.h"

namespace portcullis::proxy {
namespace {

using namespace std::chrono_literals;

std::span<const uint8_t> bytes(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

std::vector<std::string> feed_all(MessageDeframer& d, const std::vector<std::string>& chunks) {
  std::vector<std::string> out;
  for (const auto& c : chunks) d.feed(bytes(c), [&](std::string&& m) { out.push_back(std::move(m)); });
  return out;
}

TEST(MessageDeframerTest, MessageSplitAcrossFramesAtEveryByte) {
  std::string wire = frame_message("hello world");
  for (size_t cut = 0; cut <= wire.size(); ++cut) {
    MessageDeframer d(1024);
    auto got = feed_all(d, {wire.substr(0, cut), wire.substr(cut)});
    ASSERT_EQ(got, std::vector<std::string>{"hello world"}) << "cut at " << cut;
    EXPECT_FALSE(d.partial());
  }
}

TEST(MessageDeframerTest, SeveralMessagesInOneFrameIncludingEmptyOnes) {
  MessageDeframer d(1024);
  auto got = feed_all(d, {frame_message("a") + frame_message("") + frame_message("bc") + frame_message("")});
  EXPECT_EQ(got, (std::vector<std::string>{"a", "", "bc", ""}));
  EXPECT_EQ(d.messages(), 4u);
}

TEST(MessageDeframerTest, OversizedFailsOnThePrefixBeforeBuffering) {
  MessageDeframer d(10);
  std::string prefix("\0\0\0\0\x0b", 5);  // announces 11 bytes
  EXPECT_FALSE(d.feed(bytes(prefix), [](std::string&&) { FAIL(); }));
  EXPECT_EQ(d.error(), MessageDeframer::Error::kTooLarge);
  EXPECT_EQ(d.announced_length(), 11u);
  MessageDeframer ok(10);
  EXPECT_EQ(feed_all(ok, {frame_message(std::string(10, 'x'))}).size(), 1u);
  MessageDeframer huge(4 << 20);
  EXPECT_FALSE(huge.feed(bytes(std::string("\0\xff\xff\xff\xff", 5)), [](std::string&&) {}));
}

TEST(MessageDeframerTest, BadFlagsAndCompression) {
  MessageDeframer d(100);
  EXPECT_FALSE(d.feed(bytes(std::string("\x02\0\0\0\0", 5)), [](std::string&&) {}));
  EXPECT_EQ(d.error(), MessageDeframer::Error::kBadFlag);
  MessageDeframer c(100);
  EXPECT_FALSE(c.feed(bytes(std::string("\x01\0\0\0\x01x", 6)), [](std::string&&) {}));
  EXPECT_EQ(c.error(), MessageDeframer::Error::kCompressed);
  // Errors stick: later bytes are not parsed.
  EXPECT_FALSE(c.feed(bytes(frame_message("a")), [](std::string&&) { FAIL(); }));
}

TEST(MessageDeframerTest, TruncatedMessageIsPartial) {
  MessageDeframer d(100);
  EXPECT_TRUE(feed_all(d, {frame_message("abcdef").substr(0, 7)}).empty());
  EXPECT_TRUE(d.partial());
  MessageDeframer p(100);
  feed_all(p, {std::string("\0\0", 2)});
  EXPECT_TRUE(p.partial());
}

TEST(GrpcTimeoutTest, ParsesEveryUnit) {
  EXPECT_EQ(parse_grpc_timeout("1H"), 1h);
  EXPECT_EQ(parse_grpc_timeout("2M"), 2min);
  EXPECT_EQ(parse_grpc_timeout("3S"), 3s);
  EXPECT_EQ(parse_grpc_timeout("250m"), 250ms);
  EXPECT_EQ(parse_grpc_timeout("7u"), 7us);
  EXPECT_EQ(parse_grpc_timeout("99999999n"), 99999999ns);
  EXPECT_EQ(parse_grpc_timeout("0S"), 0s);
}

TEST(GrpcTimeoutTest, RejectsMalformedAndClampsHuge) {
  for (const char* bad : {"", "S", "1", "1s", "123456789S", "-1S", "1.5S", " 1S", "1SS", "1x"}) {
    EXPECT_FALSE(parse_grpc_timeout(bad)) << bad;
  }
  EXPECT_EQ(parse_grpc_timeout("99999999H"), std::chrono::nanoseconds(kMaxGrpcTimeout));
}

TEST(GrpcTimeoutTest, FormatRoundTripsAndNeverShortens) {
  for (std::chrono::nanoseconds t : {1ns, 999ns, 1500000ns, 250000000ns, 3000000000ns}) {
    auto parsed = parse_grpc_timeout(format_grpc_timeout(t));
    ASSERT_TRUE(parsed);
    EXPECT_GE(*parsed, t);
    EXPECT_LE(format_grpc_timeout(t).size(), 9u);
  }
  EXPECT_EQ(format_grpc_timeout(250ms), "250000u");  // 250000000n has 9 digits
  EXPECT_EQ(format_grpc_timeout(0ns), "1n");
}

TEST(PercentEncodingTest, EncodesWhatTheSpecSays) {
  EXPECT_EQ(percent_encode_message("plain text ~!"), "plain text ~!");
  EXPECT_EQ(percent_encode_message("100%"), "100%25");
  EXPECT_EQ(percent_encode_message("a\nb\x7f"), "a%0Ab%7F");
  EXPECT_EQ(percent_encode_message("\xc3\xa9"), "%C3%A9");  // UTF-8 bytes
}

TEST(PercentEncodingTest, DecodeNeverFails) {
  EXPECT_EQ(percent_decode_message("%C3%A9 100%25"), "\xc3\xa9 100%");
  EXPECT_EQ(percent_decode_message("bad %zz %4"), "bad %zz %4");
  EXPECT_EQ(percent_decode_message("%"), "%");
  EXPECT_EQ(percent_decode_message("%41%4a%4A"), "AJJ");
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  EXPECT_EQ(percent_decode_message(percent_encode_message(all)), all);
}

TEST(ContentTypeTest, OnlyApplicationGrpcFamily) {
  EXPECT_TRUE(is_grpc_content_type("application/grpc"));
  EXPECT_TRUE(is_grpc_content_type("application/grpc+proto"));
  EXPECT_TRUE(is_grpc_content_type("application/grpc;charset=utf-8"));
  EXPECT_FALSE(is_grpc_content_type("application/grpcx"));
  EXPECT_FALSE(is_grpc_content_type("application/json"));
  EXPECT_FALSE(is_grpc_content_type(""));
  EXPECT_FALSE(is_grpc_content_type("Application/grpc"));
}

config::Node parse_yaml(const std::string& text) {
  return config::Node(YAML::Load(text), "limits", std::make_shared<const std::string>("t.yaml"));
}

TEST(GrpcServerLimitsTest, DefaultsAndOverrides) {
  config::ErrorList errors;
  auto l = parse_grpc_server_limits(parse_yaml("{max_message_bytes: 65536, keepalive_time: 30s, max_ping_strikes: 0}"), errors);
  ASSERT_TRUE(l) << errors.format();
  EXPECT_EQ(l->max_message_bytes, 65536u);
  EXPECT_EQ(l->keepalive_time, 30s);
  EXPECT_EQ(l->max_ping_strikes, 0u);
  EXPECT_EQ(l->max_concurrent_streams, 100u);
  EXPECT_EQ(GrpcServerLimits{}.max_message_bytes, 4u << 20);
}

TEST(GrpcServerLimitsTest, ErrorsAreLocated) {
  config::ErrorList errors;
  EXPECT_FALSE(parse_grpc_server_limits(parse_yaml("{max_message_bytes: 0,\n max_streams: 3}"), errors));
  std::string text = errors.format();
  EXPECT_NE(text.find("t.yaml:1:"), std::string::npos) << text;
  EXPECT_NE(text.find("unknown field 'max_streams'"), std::string::npos) << text;
}

}  // namespace
}  // namespace portcullis::proxy
