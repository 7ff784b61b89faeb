#include "attest/authority/registration_entry.h"

#include <openssl/rand.h>

#include <algorithm>
#include <unordered_set>

#include "mtls/spiffe_id.h"

namespace portcullis::attest::authority {
namespace {

Status invalid(std::string message) { return make_error(ErrorCode::kInvalidArgument, std::move(message)); }

Status prefixed(std::string_view field, const Status& s) {
  if (s.ok()) return s;
  return invalid(std::string(field) + ": " + s.error().message);
}

// quoted is `'text'` as a std::string, so messages are built by appending (GCC 12 misreports
// `"'" + std::string(...)` under -Wrestrict).
std::string quoted(std::string_view text) {
  std::string out = "'";
  out.append(text).push_back('\'');
  return out;
}

bool is_label_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

Status validate_ttl(std::string_view field, std::chrono::seconds ttl, const EntryLimits& limits) {
  if (ttl.count() < 0) return invalid(std::string(field) + ": must not be negative");
  if (ttl > limits.max_ttl) {
    return invalid(std::string(field) + ": " + std::to_string(ttl.count()) + "s exceeds the limit of " +
                   std::to_string(limits.max_ttl.count()) + "s");
  }
  return {};
}

Status normalize_selectors(std::vector<std::string>& selectors, const EntryLimits& limits) {
  if (selectors.empty())
    return invalid("selectors: at least one is required (an entry without selectors would match every workload)");
  for (const auto& s : selectors) {
    if (Status st = validate_selector(s, limits.max_selector_bytes); !st.ok()) return prefixed("selectors", st);
  }
  std::sort(selectors.begin(), selectors.end());
  selectors.erase(std::unique(selectors.begin(), selectors.end()), selectors.end());
  if (selectors.size() > limits.max_selectors) {
    return invalid("selectors: " + std::to_string(selectors.size()) + " exceed the limit of " +
                   std::to_string(limits.max_selectors));
  }
  return {};
}

Status normalize_dns_names(std::vector<std::string>& names, const EntryLimits& limits) {
  std::vector<std::string> unique;
  std::unordered_set<std::string> seen;
  for (auto& n : names) {
    if (Status st = validate_dns_name(n); !st.ok()) return prefixed("dns_names", st);
    if (seen.insert(n).second) unique.push_back(std::move(n));
  }
  if (unique.size() > limits.max_dns_names) {
    return invalid("dns_names: " + std::to_string(unique.size()) + " exceed the limit of " +
                   std::to_string(limits.max_dns_names));
  }
  names = std::move(unique);
  return {};
}

}  // namespace

Status validate_selector(std::string_view selector, size_t max_bytes) {
  std::string shown(selector.substr(0, 80));
  if (selector.size() > max_bytes) {
    return invalid("selector '" + shown + "...' is " + std::to_string(selector.size()) + " bytes, over the limit of " +
                   std::to_string(max_bytes));
  }
  for (char c : selector) {
    if (c < 0x21 || c > 0x7e) return invalid("selector '" + shown + "' has a space, control or non-ASCII character");
  }
  size_t first = selector.find(':');
  size_t second = first == std::string_view::npos ? first : selector.find(':', first + 1);
  if (second == std::string_view::npos) return invalid("selector '" + shown + "' is not TYPE:KEY:VALUE");
  if (first == 0 || second == first + 1 || second + 1 == selector.size()) {
    return invalid("selector '" + shown + "' has an empty TYPE, KEY or VALUE");
  }
  return {};
}

Status validate_dns_name(std::string_view name) {
  std::string shown(name.substr(0, 80));
  if (name.empty()) return invalid("a DNS name must not be empty");
  if (name.size() > 253) return invalid("DNS name '" + shown + "...' is longer than 253 bytes");
  std::string_view rest = name;
  if (rest.starts_with("*.")) rest.remove_prefix(2);
  while (true) {
    size_t dot = rest.find('.');
    std::string_view label = rest.substr(0, dot);
    if (label.empty() || label.size() > 63) return invalid("DNS name '" + shown + "' has an empty or over-long label");
    if (!std::all_of(label.begin(), label.end(), is_label_char)) {
      return invalid("DNS name '" + shown +
                     "' has a character other than letters, digits, '-' and '.' (or a non-leading '*')");
    }
    if (label.front() == '-' || label.back() == '-')
      return invalid("DNS name '" + shown + "' has a label starting or ending with '-'");
    if (dot == std::string_view::npos) return {};
    rest.remove_prefix(dot + 1);
  }
}

Status validate_entry_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return invalid("entry id must be 1 to 64 bytes");
  for (char c : id) {
    if (!is_label_char(c) && c != '.' && c != '_')
      return invalid("entry id " + quoted(id) + " may only use [A-Za-z0-9._-]");
  }
  return {};
}

Status validate_workload_spiffe_id(std::string_view id, std::string_view trust_domain) {
  auto parsed = mtls::SpiffeId::parse(id);
  if (!parsed.ok()) return invalid(parsed.error().message);
  if (parsed->is_trust_domain_id()) return invalid(quoted(id) + " has no path; a workload ID needs one");
  std::string_view path = parsed->path();
  auto under = [path](std::string_view prefix) {
    return path == prefix || (path.starts_with(prefix) && path[prefix.size()] == '/');
  };
  if (under(kNodePathPrefix)) {
    return invalid(quoted(id) + " is under " + std::string(kNodePathPrefix) + ", which is reserved for node SVIDs");
  }
  if (under(kReservedPathPrefix)) {
    return invalid(quoted(id) + " is under " + std::string(kReservedPathPrefix) +
                   ", which is reserved for the authority's own identity");
  }
  if (!trust_domain.empty() && !parsed->member_of(trust_domain)) {
    return invalid(quoted(id) + " is not in the authority's trust domain " + std::string(trust_domain));
  }
  return {};
}

Status validate_parent_id(std::string_view id, std::string_view trust_domain) {
  if (id.empty()) return {};
  auto parsed = mtls::SpiffeId::parse(id);
  if (!parsed.ok()) return invalid(parsed.error().message);
  if (!trust_domain.empty() && !parsed->member_of(trust_domain)) {
    return invalid(quoted(id) + " is not in the authority's trust domain " + std::string(trust_domain));
  }
  return {};
}

Status normalize_entry(RegistrationEntry& entry, const EntryLimits& limits, std::string_view trust_domain) {
  if (Status s = validate_workload_spiffe_id(entry.spiffe_id, trust_domain); !s.ok()) return prefixed("spiffe_id", s);
  if (Status s = validate_parent_id(entry.parent_id, trust_domain); !s.ok()) return prefixed("parent_id", s);
  if (Status s = normalize_selectors(entry.selectors, limits); !s.ok()) return s;
  if (Status s = validate_ttl("x509_svid_ttl", entry.x509_svid_ttl, limits); !s.ok()) return s;
  if (Status s = validate_ttl("jwt_svid_ttl", entry.jwt_svid_ttl, limits); !s.ok()) return s;
  return normalize_dns_names(entry.dns_names, limits);
}

std::vector<const RegistrationEntry*> match_entries(const std::vector<RegistrationEntry>& entries,
                                                    std::string_view node_id,
                                                    const std::vector<std::string>& selectors) {
  // std::includes needs both ranges sorted; callers normally pass the kernel attestor's sorted
  // list, so the copy is the rare path.
  std::vector<std::string> sorted_copy;
  const std::vector<std::string>* have = &selectors;
  if (!std::is_sorted(selectors.begin(), selectors.end())) {
    sorted_copy = selectors;
    std::sort(sorted_copy.begin(), sorted_copy.end());
    have = &sorted_copy;
  }
  std::vector<const RegistrationEntry*> out;
  for (const auto& e : entries) {
    if (e.selectors.size() > have->size()) continue;
    if (!e.parent_id.empty() && e.parent_id != node_id) continue;
    if (std::includes(have->begin(), have->end(), e.selectors.begin(), e.selectors.end())) out.push_back(&e);
  }
  return out;
}

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<uint8_t*>(raw.data()), raw.size());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * bytes, '0');
  for (size_t i = 0; i < bytes; ++i) {
    auto b = static_cast<uint8_t>(raw[i]);
    out[2 * i] = kHex[b >> 4];
    out[2 * i + 1] = kHex[b & 15];
  }
  return out;
}

}  // namespace portcullis::attest::authority
