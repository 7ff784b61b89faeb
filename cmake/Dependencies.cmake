# All dependencies come from Debian 12 packages (scripts/install-deps.sh installs them).

# BoringSSL from android-libboringssl-dev. Never find_package(OpenSSL): it resolves to OpenSSL 3,
# whose unversioned-symbol clash with BoringSSL corrupts memory when both are loaded.
set(BORINGSSL_LIBDIR /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/android)
find_path(BORINGSSL_INCLUDE_DIR openssl/base.h PATHS /usr/include/android NO_DEFAULT_PATH REQUIRED)
find_library(BORINGSSL_SSL_LIBRARY NAMES ssl PATHS ${BORINGSSL_LIBDIR} NO_DEFAULT_PATH REQUIRED)
find_library(BORINGSSL_CRYPTO_LIBRARY NAMES crypto PATHS ${BORINGSSL_LIBDIR} NO_DEFAULT_PATH REQUIRED)
add_library(BoringSSL::crypto SHARED IMPORTED)
set_target_properties(BoringSSL::crypto PROPERTIES
  IMPORTED_LOCATION "${BORINGSSL_CRYPTO_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${BORINGSSL_INCLUDE_DIR}")
add_library(BoringSSL::ssl SHARED IMPORTED)
set_target_properties(BoringSSL::ssl PROPERTIES
  IMPORTED_LOCATION "${BORINGSSL_SSL_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${BORINGSSL_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES BoringSSL::crypto)

find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(spdlog REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json REQUIRED)

# RE2 for every user-supplied regex: linear time, no stack recursion (std::regex has both problems).
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)

find_path(ASIO_INCLUDE_DIR asio.hpp REQUIRED)
add_library(asio_standalone INTERFACE)
target_include_directories(asio_standalone SYSTEM INTERFACE ${ASIO_INCLUDE_DIR})
target_compile_definitions(asio_standalone INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED)
target_link_libraries(asio_standalone INTERFACE Threads::Threads)

# gRPC: protobuf 3.21 (full runtime and protoc) and nghttp2 for HTTP/2. nghttp2 ships no CMake
# config. Only proxy/http and proxy/grpc may link it.
find_package(Protobuf REQUIRED)
pkg_check_modules(NGHTTP2 REQUIRED IMPORTED_TARGET libnghttp2)

find_path(HTTP_PARSER_INCLUDE_DIR http_parser.h REQUIRED)
find_library(HTTP_PARSER_LIBRARY NAMES http_parser REQUIRED)
add_library(http_parser::http_parser UNKNOWN IMPORTED)
set_target_properties(http_parser::http_parser PROPERTIES
  IMPORTED_LOCATION "${HTTP_PARSER_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${HTTP_PARSER_INCLUDE_DIR}")

if(PORTCULLIS_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(PORTCULLIS_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

# SQLite (libsqlite3-dev) for the attestation authority's store; CMake's FindSQLite3 gives
# SQLite::SQLite3.
find_package(SQLite3 REQUIRED)
