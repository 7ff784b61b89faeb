#pragma once

#include <string>

namespace portcullis::mtls {

// boringssl_version describes the TLS library linked into the process, e.g.
// "BoringSSL (API 17, OpenSSL 1.1.1 (compatible; BoringSSL))".
std::string boringssl_version();

// is_boringssl is true when the TLS headers this process was built against are BoringSSL's.
bool is_boringssl();

}  // namespace portcullis::mtls
