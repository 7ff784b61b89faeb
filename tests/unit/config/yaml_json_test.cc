#include "config/yaml_json.h"

#include <gtest/gtest.h>

namespace portcullis::config {
namespace {

TEST(YamlToJson, ConvertsScalarsByYamlCoreRules) {
  auto json = yaml_to_json(YAML::Load(R"(
port: 8080
ratio: 0.5
on: true
off: false
name: ingress
quoted: "123"
nothing: null
list: [1, two]
)"));
  EXPECT_EQ(json["port"], 8080);
  EXPECT_EQ(json["ratio"], 0.5);
  EXPECT_EQ(json["on"], true);
  EXPECT_EQ(json["off"], false);
  EXPECT_EQ(json["name"], "ingress");
  EXPECT_EQ(json["quoted"], "123");
  EXPECT_TRUE(json["nothing"].is_null());
  EXPECT_EQ(json["list"], nlohmann::json::parse(R"([1, "two"])"));
}

TEST(YamlToJson, RedactsSecrets) {
  auto json = yaml_to_json(YAML::Load("tls: {private_key: {filename: /k.pem}, token: abc, cert: c}"));
  EXPECT_EQ(json["tls"]["private_key"], "[redacted]");
  EXPECT_EQ(json["tls"]["token"], "[redacted]");
  EXPECT_EQ(json["tls"]["cert"], "c");
}

}  // namespace
}  // namespace portcullis::config
