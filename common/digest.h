#pragma once

#include <string>
#include <string_view>

namespace portcullis {

// sha256_hex is the lowercase hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

}  // namespace portcullis
