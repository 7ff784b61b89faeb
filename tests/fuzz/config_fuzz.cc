// Fuzzes the whole config pipeline (YAML load, bootstrap parse, filter build) on untrusted bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/stats.h"
#include "config/yaml_file.h"
#include "proxy/server_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  portcullis::config::ErrorList errors;
  portcullis::StatsStore stats;
  if (auto root = portcullis::config::load_yaml_text(text, "fuzz.yaml", errors)) {
    (void)portcullis::proxy::build_server_config(*root, {}, stats, errors);
  }
  (void)errors.format();
  return 0;
}
