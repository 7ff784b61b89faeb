// Fuzzes admin request-target parsing (path + percent-decoded query) on untrusted bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "proxy/admin_server.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  portcullis::proxy::AdminRequest request;
  portcullis::proxy::parse_admin_target(std::string(reinterpret_cast<const char*>(data), size), request);
  return 0;
}
