#include "mtls/ssl_error.h"

#include <openssl/err.h>

namespace portcullis::mtls {

std::string drain_ssl_errors() {
  std::string out;
  while (uint32_t e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

}  // namespace portcullis::mtls
