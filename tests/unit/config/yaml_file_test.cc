#include "config/yaml_file.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

namespace portcullis::config {
namespace {

std::string first_error(const std::string& text) {
  ErrorList errors;
  auto node = load_yaml_text(text, "c.yaml", errors);
  EXPECT_FALSE(node.has_value());
  return errors.empty() ? "" : errors.errors()[0].format();
}

TEST(LoadYamlText, RejectsEmptyAndWhitespace) {
  EXPECT_EQ(first_error(""), "c.yaml: config is empty");
  EXPECT_EQ(first_error(" \n\t\n"), "c.yaml: config is empty");
}

TEST(LoadYamlText, RejectsNulBytesAsBinary) {
  std::string text = "a: 1\nb: \x01\x02";
  text.push_back('\0');
  EXPECT_EQ(first_error(text), "c.yaml:2:6: config contains a NUL byte: this is binary data, not YAML");
}

TEST(LoadYamlText, RejectsInvalidUtf8) {
  EXPECT_EQ(first_error("a: \xff\xfe"), "c.yaml:1:4: config is not valid UTF-8");
}

TEST(LoadYamlText, RejectsNonMapRoots) {
  EXPECT_EQ(first_error("- a\n- b\n"), "c.yaml:1:1: config root must be a map, got a list");
  EXPECT_EQ(first_error("just a string"), "c.yaml:1:1: config root must be a map, got a scalar");
}

TEST(LoadYamlText, ReportsSyntaxErrorsWithLocation) {
  std::string err = first_error("a: [1, 2\nb: 3\n");
  EXPECT_EQ(err.rfind("c.yaml:", 0), 0u) << err;
  EXPECT_NE(err.find("YAML syntax error"), std::string::npos) << err;
}

TEST(LoadYamlText, DeepNestingIsAnErrorNotAStackOverflow) {
  std::string text = "a: " + std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(first_error(text), "c.yaml:1:200004: YAML nesting is deeper than 500 levels");
}

TEST(LoadYamlFile, RefusesFilesOverTheLimitWithoutReadingThemWhole) {
  char path[] = "/tmp/portcullis-big-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string chunk(1 << 20, 'a');
  for (int i = 0; i < 3; ++i) ASSERT_EQ(write(fd, chunk.data(), chunk.size()), static_cast<ssize_t>(chunk.size()));
  close(fd);
  ErrorList errors;
  EXPECT_FALSE(load_yaml_file(path, 1 << 20, errors).has_value());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors.errors()[0].format(),
            std::string(path) + ": config is larger than the limit of 1048576 bytes (--max-config-bytes)");
  unlink(path);
}

TEST(LoadYamlFile, ReportsMissingFileAndDirectory) {
  ErrorList errors;
  EXPECT_FALSE(load_yaml_file("/nonexistent/portcullis.yaml", 1 << 20, errors).has_value());
  EXPECT_FALSE(load_yaml_file("/tmp", 1 << 20, errors).has_value());
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors.errors()[0].format(), "/nonexistent/portcullis.yaml: cannot open config: No such file or directory");
  EXPECT_EQ(errors.errors()[1].format(), "/tmp: config path is a directory");
}

TEST(ErrorList, StopsGrowingAtTheCap) {
  ErrorList errors;
  for (size_t i = 0; i < ErrorList::kMaxErrors + 50; ++i) errors.add({"f", 1, 1}, "p", "m");
  EXPECT_EQ(errors.size(), ErrorList::kMaxErrors);
  EXPECT_NE(errors.format().find("... and 50 more errors"), std::string::npos);
}

}  // namespace
}  // namespace portcullis::config

namespace portcullis::config {
namespace {

TEST(LoadYamlText, RefusesAliasesBecauseTheyExpandWithoutBound) {
  EXPECT_EQ(first_error("a: &x {b: [*x]}\n"), "c.yaml:1:12: YAML aliases (*name) are not supported: repeat the block instead");
  std::string bomb = "l0: &a [x, x]\n";
  for (int i = 1; i < 30; ++i) {
    bomb += "l" + std::to_string(i) + ": &" + std::string(1, 'a' + i % 26) + std::to_string(i) + " [*" +
            (i == 1 ? std::string("a") : std::string(1, 'a' + (i - 1) % 26) + std::to_string(i - 1)) + ", *" +
            (i == 1 ? std::string("a") : std::string(1, 'a' + (i - 1) % 26) + std::to_string(i - 1)) + "]\n";
  }
  EXPECT_NE(first_error(bomb).find("YAML aliases (*name) are not supported"), std::string::npos);
}

}  // namespace
}  // namespace portcullis::config
