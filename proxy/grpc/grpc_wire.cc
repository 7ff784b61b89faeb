#include "proxy/grpc/grpc_wire.h"

#include <algorithm>
#include <cstring>

namespace portcullis::proxy {

std::string frame_message(std::string_view message) {
  std::string out;
  out.reserve(kMessagePrefixBytes + message.size());
  uint32_t n = static_cast<uint32_t>(message.size());
  out.push_back('\0');
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out.append(message);
  return out;
}

bool MessageDeframer::start_message() {
  uint8_t flag = prefix_[0];
  expected_ = (uint32_t{prefix_[1]} << 24) | (uint32_t{prefix_[2]} << 16) | (uint32_t{prefix_[3]} << 8) | prefix_[4];
  if (flag > 1) error_ = Error::kBadFlag;
  else if (flag == 1) error_ = Error::kCompressed;
  else if (expected_ > max_) error_ = Error::kTooLarge;
  if (error_ != Error::kNone) return false;
  have_prefix_ = true;
  body_.reserve(expected_);
  return true;
}

std::optional<std::chrono::nanoseconds> parse_grpc_timeout(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) return std::nullopt;
  uint64_t n = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  // 99,999,999 hours overflow int64 nanoseconds: clamp before multiplying.
  using std::chrono::nanoseconds;
  const uint64_t max_ns = static_cast<uint64_t>(nanoseconds(kMaxGrpcTimeout).count());
  uint64_t unit_ns = 0;
  switch (value.back()) {
    case 'H': unit_ns = 3600ull * 1000000000ull; break;
    case 'M': unit_ns = 60ull * 1000000000ull; break;
    case 'S': unit_ns = 1000000000ull; break;
    case 'm': unit_ns = 1000000ull; break;
    case 'u': unit_ns = 1000ull; break;
    case 'n': unit_ns = 1ull; break;
    default: return std::nullopt;
  }
  if (n > max_ns / unit_ns) return nanoseconds(max_ns);
  return nanoseconds(static_cast<int64_t>(n * unit_ns));
}

std::string format_grpc_timeout(std::chrono::nanoseconds timeout) {
  static constexpr struct {
    int64_t ns;
    char unit;
  } kUnits[] = {{1, 'n'}, {1000, 'u'}, {1000000, 'm'}, {1000000000, 'S'}, {60000000000, 'M'}, {3600000000000, 'H'}};
  int64_t ns = std::max<int64_t>(timeout.count(), 1);
  for (const auto& u : kUnits) {
    int64_t v = (ns + u.ns - 1) / u.ns;  // round up
    if (v < 100000000) return std::to_string(v) + u.unit;
  }
  return "99999999H";
}

std::string percent_encode_message(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

namespace {
int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string percent_decode_message(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

bool is_grpc_content_type(std::string_view value) {
  constexpr std::string_view kBase = "application/grpc";
  if (value.substr(0, kBase.size()) != kBase) return false;
  return value.size() == kBase.size() || value[kBase.size()] == '+' || value[kBase.size()] == ';';
}

size_t copy_queued_output(std::deque<std::string>& queue, size_t* offset, uint8_t* buf, size_t length) {
  size_t copied = 0;
  while (copied < length && !queue.empty()) {
    const std::string& front = queue.front();
    size_t n = std::min(length - copied, front.size() - *offset);
    std::memcpy(buf + copied, front.data() + *offset, n);
    copied += n;
    *offset += n;
    if (*offset == front.size()) {
      queue.pop_front();
      *offset = 0;
    }
  }
  return copied;
}

}  // namespace portcullis::proxy
