#include "mtls/boringssl_info.h"

#include <openssl/base.h>
#include <openssl/crypto.h>

// OpenSSL 3's headers are always installed next to BoringSSL's (libssl-dev is pulled in by
// libasio-dev and libtss2-dev). Building against them by accident would link the wrong library.
#ifndef OPENSSL_IS_BORINGSSL
#error "portcullis must be built against BoringSSL (/usr/include/android), not OpenSSL"
#endif

namespace portcullis::mtls {

std::string boringssl_version() {
  return "BoringSSL (API " + std::to_string(BORINGSSL_API_VERSION) + ", " + OpenSSL_version(OPENSSL_VERSION) + ")";
}

bool is_boringssl() { return true; }

}  // namespace portcullis::mtls
