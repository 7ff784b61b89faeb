#pragma once

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

namespace portcullis::config {

// yaml_to_json converts a parsed YAML document to JSON for /config_dump. Plain scalars that read
// as YAML 1.2 core integers, floats or booleans become JSON numbers/booleans; everything else a
// string. Values of fields named `private_key`, `token` or `jwt_signing_key` are redacted so the
// dump can be shared.
nlohmann::json yaml_to_json(const YAML::Node& node);

}  // namespace portcullis::config
