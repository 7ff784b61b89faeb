#pragma once

#include <string>

namespace portcullis::proxy {

// portcullis_version is "<semver>/<git sha>/<build type>".
std::string portcullis_version();
// version_report lists portcullis and every library linked into the binary, one per line.
std::string version_report();

}  // namespace portcullis::proxy
