#pragma once

#include <string>

namespace portcullis::mtls {

// drain_ssl_errors empties this thread's BoringSSL error queue into one readable string
// ("" when it was empty). Call after every failed BoringSSL call so stale errors never leak into
// the next report.
std::string drain_ssl_errors();

}  // namespace portcullis::mtls
