#pragma once

#include <openssl/evp.h>

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "common/result.h"

namespace portcullis::attest::authority {

// The CA's files: private keys must never be readable by anyone but us, and a crash at any point
// must leave either the old or the new file, never a torn one. Free functions; no shared state.

// ensure_private_dir creates `dir` (and its parents) with mode 0700 when missing. An existing
// directory is accepted unless group or others may write to it (they could swap our files).
Status ensure_private_dir(const std::string& dir);

// write_file_atomic writes `bytes` to a new temporary file in the same directory, created with
// O_EXCL and `mode` (so the content is never visible with wider permissions), fsyncs it, renames
// it over `path` and fsyncs the directory.
Status write_file_atomic(const std::string& path, std::string_view bytes, mode_t mode);

// read_small_file returns a file's bytes; fails when it is missing or larger than `max_bytes`.
Result<std::string> read_small_file(const std::string& path, size_t max_bytes = 1 << 20);

// read_private_key_file reads a PEM private key that only its owner may read: a key file with
// any group or other permission bit is refused, as ssh does.
Result<bssl::UniquePtr<EVP_PKEY>> read_private_key_file(const std::string& path);

// private_key_pem returns `key` as PKCS#8 PEM.
Result<std::string> private_key_pem(EVP_PKEY* key);

// parse_private_key_pem reads a PKCS#8, SEC1 or PKCS#1 PEM private key; `what` names it in errors.
Result<bssl::UniquePtr<EVP_PKEY>> parse_private_key_pem(std::string_view pem, const std::string& what);

}  // namespace portcullis::attest::authority
