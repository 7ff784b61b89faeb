#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace portcullis::proxy {

// The I/O-free pieces of gRPC over HTTP/2 (wire facts §1): message framing, grpc-timeout,
// grpc-message encoding, content-type. Pure functions; safe from any thread.

inline constexpr size_t kMessagePrefixBytes = 5;  // 1 flag byte + 4-byte big-endian length

// frame_message returns `message` behind its uncompressed Length-Prefixed-Message prefix.
std::string frame_message(std::string_view message);

// copy_queued_output moves up to `length` bytes of framed messages from the front of `queue` into
// `buf` (nghttp2's DATA read callback), popping messages once fully copied; `*offset` is how far
// into the front message earlier calls got. Returns the bytes copied.
size_t copy_queued_output(std::deque<std::string>& queue, size_t* offset, uint8_t* buf, size_t length);

// MessageDeframer reassembles Length-Prefixed-Messages from DATA frame payloads, whose boundaries
// have no relation to message boundaries. Memory is bounded: a prefix announcing more than
// max_message_bytes fails at once, before anything of the body is buffered. One per stream.
class MessageDeframer {
 public:
  enum class Error {
    kNone,
    kTooLarge,       // -> RESOURCE_EXHAUSTED
    kCompressed,     // flag 1: the caller decides INTERNAL (no encoding) or UNIMPLEMENTED
    kBadFlag,        // flag byte other than 0/1 -> INTERNAL
  };

  explicit MessageDeframer(size_t max_message_bytes) : max_(max_message_bytes) {}

  // feed consumes bytes; `on_message(std::string&&)` runs for each complete message. Stops at the
  // first error, which sticks (error()). Returns false on error.
  template <typename Fn>
  bool feed(std::span<const uint8_t> data, Fn&& on_message) {
    while (!data.empty() && error_ == Error::kNone) {
      if (!have_prefix_) {
        size_t take = std::min(kMessagePrefixBytes - prefix_len_, data.size());
        for (size_t i = 0; i < take; ++i) prefix_[prefix_len_++] = data[i];
        data = data.subspan(take);
        if (prefix_len_ < kMessagePrefixBytes) break;
        if (!start_message()) break;
      }
      size_t take = std::min(expected_ - body_.size(), data.size());
      body_.append(reinterpret_cast<const char*>(data.data()), take);
      data = data.subspan(take);
      if (body_.size() == expected_) finish_message(on_message);
    }
    // A zero-length message completes as soon as its prefix has arrived.
    if (have_prefix_ && error_ == Error::kNone && expected_ == 0) finish_message(on_message);
    return error_ == Error::kNone;
  }

  Error error() const { return error_; }
  // partial: bytes of an unfinished message are buffered (END_STREAM now means a truncated message).
  bool partial() const { return prefix_len_ > 0; }
  size_t messages() const { return messages_; }
  uint32_t announced_length() const { return expected_; }

 private:
  bool start_message();
  template <typename Fn>
  void finish_message(Fn& on_message) {
    std::string msg = std::move(body_);
    body_.clear();
    prefix_len_ = 0;
    have_prefix_ = false;
    expected_ = 0;
    ++messages_;
    on_message(std::move(msg));
  }

  size_t max_;
  uint8_t prefix_[kMessagePrefixBytes] = {};
  size_t prefix_len_ = 0;
  bool have_prefix_ = false;
  uint32_t expected_ = 0;
  std::string body_;
  size_t messages_ = 0;
  Error error_ = Error::kNone;
};

// parse_grpc_timeout reads `grpc-timeout`: 1-8 ASCII digits and one unit of H M S m u n. nullopt
// on anything else. Values beyond kMaxTimeout are clamped to kMaxGrpcTimeout (8 digits of hours overflow).
inline constexpr std::chrono::hours kMaxGrpcTimeout{24 * 365 * 10};
std::optional<std::chrono::nanoseconds> parse_grpc_timeout(std::string_view value);
// format_grpc_timeout renders a timeout for a request header (at most 8 digits, rounding up so a
// deadline is never shortened to zero).
std::string format_grpc_timeout(std::chrono::nanoseconds timeout);

// percent_encode_message encodes `grpc-message`: 0x20-0x7E except '%' pass, the rest is %XX.
std::string percent_encode_message(std::string_view text);
// percent_decode_message never fails: a '%' not followed by two hex digits is kept as is.
std::string percent_decode_message(std::string_view text);

// is_grpc_content_type: "application/grpc" exactly or followed by '+' or ';' (e.g. +proto).
bool is_grpc_content_type(std::string_view value);

}  // namespace portcullis::proxy
