#include "proxy/version_info.h"

#include <http_parser.h>

#include <CLI/Version.hpp>
#include <asio/version.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/version.h>
#include <fmt/core.h>

#include "mtls/boringssl_info.h"

#ifndef PORTCULLIS_VERSION
#define PORTCULLIS_VERSION "0.0.0"
#endif
#ifndef PORTCULLIS_GIT_SHA
#define PORTCULLIS_GIT_SHA "unknown"
#endif
#ifndef PORTCULLIS_BUILD_TYPE
#define PORTCULLIS_BUILD_TYPE "unknown"
#endif
#ifndef PORTCULLIS_YAML_CPP_VERSION
#define PORTCULLIS_YAML_CPP_VERSION "unknown"
#endif

namespace portcullis::proxy {

std::string portcullis_version() {
  return std::string(PORTCULLIS_VERSION) + "/" + PORTCULLIS_GIT_SHA + "/" + PORTCULLIS_BUILD_TYPE;
}

std::string version_report() {
  unsigned long hp = http_parser_version();
  std::string out;
  out += "portcullis " + portcullis_version() + "\n";
  out += "  tls:           " + mtls::boringssl_version() + "\n";
  out += fmt::format("  asio:          {}.{}.{}\n", ASIO_VERSION / 100000, ASIO_VERSION / 100 % 1000, ASIO_VERSION % 100);
  out += fmt::format("  spdlog:        {}.{}.{}\n", SPDLOG_VER_MAJOR, SPDLOG_VER_MINOR, SPDLOG_VER_PATCH);
  out += fmt::format("  fmt:           {}.{}.{}\n", FMT_VERSION / 10000, FMT_VERSION / 100 % 100, FMT_VERSION % 100);
  out += std::string("  yaml-cpp:      ") + PORTCULLIS_YAML_CPP_VERSION + "\n";
  out += fmt::format("  nlohmann-json: {}.{}.{}\n", NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR,
                     NLOHMANN_JSON_VERSION_PATCH);
  out += std::string("  CLI11:         ") + CLI11_VERSION + "\n";
  out += fmt::format("  http-parser:   {}.{}.{}\n", (hp >> 16) & 255, (hp >> 8) & 255, hp & 255);
  return out;
}

}  // namespace portcullis::proxy
