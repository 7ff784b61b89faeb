#include "common/audit.h"

#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace portcullis {
namespace {

std::string temp_path(const char* name) {
  return std::string("/tmp/portcullis-audit-test-") + std::to_string(::getpid()) + "-" + name;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

AuditRecord record(uint64_t id, const char* decision) {
  AuditRecord r;
  r.connection_id = id;
  r.listener = "inbound";
  r.peer_address = "127.0.0.1:5000";
  r.peer_spiffe_id = "spiffe://example.org/web";
  r.cert_serial = "0a1b";
  r.decision = decision;
  r.policy = "web";
  r.reason = "rbac ALLOW: policy matched";
  return r;
}

TEST(AuditLog, WritesHashChainedJsonLinesThatVerify) {
  std::string path = temp_path("chain");
  ::unlink(path.c_str());
  StatsStore stats;
  {
    auto log = AuditLog::create({{AuditSinkConfig::Kind::kFile, path}}, 1024, stats);
    ASSERT_TRUE(log.ok()) << log.error().message;
    for (uint64_t i = 1; i <= 5; ++i) (*log)->record(record(i, i % 2 ? "allow" : "deny"));
    (*log)->flush();
  }
  auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 5u);
  auto first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first["prev_sha256"], std::string(64, '0'));
  EXPECT_EQ(first["decision"], "allow");
  EXPECT_EQ(first["peer_spiffe_id"], "spiffe://example.org/web");
  EXPECT_EQ(first["time"].get<std::string>().size(), std::string("2026-12-04T17:43:04.126964Z").size());
  EXPECT_EQ(nlohmann::json::parse(lines[1])["prev_sha256"], sha256_hex(lines[0]));
  auto verified = verify_audit_chain(path);
  ASSERT_TRUE(verified.ok()) << verified.error().message;
  EXPECT_EQ(*verified, 5u);
  EXPECT_EQ(stats.value("audit.written"), 5);
  ::unlink(path.c_str());
}

TEST(AuditLog, VerifyNamesTheFirstBrokenLine) {
  std::string path = temp_path("tamper");
  ::unlink(path.c_str());
  StatsStore stats;
  {
    auto log = AuditLog::create({{AuditSinkConfig::Kind::kFile, path}}, 1024, stats);
    ASSERT_TRUE(log.ok());
    for (uint64_t i = 1; i <= 4; ++i) (*log)->record(record(i, "deny"));
    (*log)->flush();
  }
  auto lines = read_lines(path);
  lines[1].replace(lines[1].find("\"deny\""), 6, "\"allow\"");
  {
    std::ofstream out(path, std::ios::trunc);
    for (const auto& l : lines) out << l << "\n";
  }
  auto verified = verify_audit_chain(path);
  ASSERT_FALSE(verified.ok());
  EXPECT_NE(verified.error().message.find(path + ":3: hash chain broken"), std::string::npos) << verified.error().message;

  // A deleted line is caught the same way.
  lines = read_lines(path);
  lines.erase(lines.begin() + 1);
  {
    std::ofstream out(path, std::ios::trunc);
    for (const auto& l : lines) out << l << "\n";
  }
  EXPECT_FALSE(verify_audit_chain(path).ok());
  ::unlink(path.c_str());
}

TEST(AuditLog, ReopenContinuesTheChainInTheNewFile) {
  std::string path = temp_path("rotate");
  ::unlink(path.c_str());
  ::unlink((path + ".1").c_str());
  StatsStore stats;
  auto log = AuditLog::create({{AuditSinkConfig::Kind::kFile, path}}, 1024, stats);
  ASSERT_TRUE(log.ok());
  (*log)->record(record(1, "allow"));
  (*log)->flush();
  ASSERT_EQ(::rename(path.c_str(), (path + ".1").c_str()), 0);
  (*log)->reopen();
  (*log)->record(record(2, "allow"));
  (*log)->flush();
  auto old_lines = read_lines(path + ".1");
  auto new_lines = read_lines(path);
  ASSERT_EQ(old_lines.size(), 1u);
  ASSERT_EQ(new_lines.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(new_lines[0])["prev_sha256"], sha256_hex(old_lines[0]));
  EXPECT_EQ(stats.value("audit.reopened"), 1);
  ::unlink(path.c_str());
  ::unlink((path + ".1").c_str());
}

TEST(AuditLog, ARestartedWriterContinuesTheChainOfItsFile) {
  std::string path = temp_path("restart");
  ::unlink(path.c_str());
  StatsStore stats;
  for (int run = 0; run < 2; ++run) {
    auto log = AuditLog::create({{AuditSinkConfig::Kind::kFile, path}}, 16, stats);
    ASSERT_TRUE(log.ok());
    (*log)->record(record(1, "allow"));
    (*log)->record(record(2, "deny"));
    (*log)->flush();
  }
  auto verified = verify_audit_chain(path);
  ASSERT_TRUE(verified.ok()) << verified.error().message;
  EXPECT_EQ(*verified, 4u);
  ::unlink(path.c_str());
}

TEST(AuditLog, OpenFailureIsAnError) {
  StatsStore stats;
  auto log = AuditLog::create({{AuditSinkConfig::Kind::kFile, "/nonexistent-dir/audit.log"}}, 16, stats);
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.error().message.find("cannot open audit log /nonexistent-dir/audit.log"), std::string::npos);
}

TEST(AuditVerify, RejectsNonAuditInput) {
  std::string path = temp_path("garbage");
  {
    std::ofstream out(path);
    out << "not json\n";
  }
  auto verified = verify_audit_chain(path);
  ASSERT_FALSE(verified.ok());
  EXPECT_EQ(verified.error().message, path + ":1: not an audit record");
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace portcullis
