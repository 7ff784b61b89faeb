#include "mtls/attested_claims.h"

#include <openssl/bytestring.h>
#include <openssl/obj.h>
#include <openssl/x509v3.h>

#include <algorithm>

#include "mtls/ssl_error.h"

namespace portcullis::mtls {

// Not 2.25.<UUID>: Go's crypto/x509 refuses OID arcs of 2^31 or more and would reject the whole
// certificate, cutting off go-spiffe peers. See docs/attested-claims.md.
const char kAttestedClaimsOid[] = "1.3.6.1.4.1.1719231.1.1";

namespace {

bool type_or_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

// utf8_problem rejects malformed UTF-8 (overlongs, surrogates, > U+10FFFF) and control characters:
// claims end up in logs and audit records, where a raw newline or escape would forge lines.
const char* utf8_problem(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      if (b < 0x20 || b == 0x7f) return "contains a control character";
      ++i;
      continue;
    }
    size_t len = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 ? 2 : 0;
    if (len == 0 || b > 0xf4 || i + len > s.size()) return "is not valid UTF-8";
    uint32_t cp = b & (0xff >> (len + 1));
    for (size_t k = 1; k < len; ++k) {
      auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xc0) != 0x80) return "is not valid UTF-8";
      cp = (cp << 6) | (c & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return "is not valid UTF-8";
    }
    if (cp >= 0x80 && cp < 0xa0) return "contains a control character";
    i += len;
  }
  return nullptr;
}

Error invalid(std::string message) { return make_error(ErrorCode::kInvalidArgument, "attested claims: " + std::move(message)); }

std::string clip(std::string_view s) {
  constexpr size_t kMax = 128;
  return s.size() <= kMax ? std::string(s) : std::string(s.substr(0, kMax)) + "...";
}

}  // namespace

std::string attested_claim_problem(std::string_view claim) {
  size_t first = claim.find(':');
  size_t second = first == std::string_view::npos ? first : claim.find(':', first + 1);
  if (second == std::string_view::npos) return "is not TYPE:KEY:VALUE";
  std::string_view type = claim.substr(0, first), key = claim.substr(first + 1, second - first - 1);
  if (type.empty() || key.empty()) return "has an empty TYPE or KEY";
  if (!std::all_of(type.begin(), type.end(), type_or_key_char) || !std::all_of(key.begin(), key.end(), type_or_key_char)) {
    return "TYPE and KEY may only hold a-z, 0-9, '_', '.' and '-'";
  }
  if (const char* p = utf8_problem(claim)) return p;
  return "";
}

Result<std::string> encode_attested_claims(const std::vector<std::string>& claims) {
  std::vector<std::string> sorted = claims;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  const AttestedClaimsLimits limits;
  if (sorted.empty()) return invalid("no claims (omit the extension instead)");
  if (sorted.size() > limits.max_claims) return invalid(std::to_string(sorted.size()) + " claims, more than " + std::to_string(limits.max_claims));
  bssl::ScopedCBB cbb;
  CBB seq;
  if (!CBB_init(cbb.get(), 256) || !CBB_add_asn1(cbb.get(), &seq, CBS_ASN1_SEQUENCE)) return invalid("out of memory");
  for (const std::string& c : sorted) {
    if (auto p = attested_claim_problem(c); !p.empty()) return invalid("claim '" + clip(c) + "' " + p);
    if (c.size() > limits.max_claim_bytes) return invalid("claim '" + clip(c) + "' is longer than " + std::to_string(limits.max_claim_bytes) + " bytes");
    CBB str;
    if (!CBB_add_asn1(&seq, &str, CBS_ASN1_UTF8STRING) ||
        !CBB_add_bytes(&str, reinterpret_cast<const uint8_t*>(c.data()), c.size()) || !CBB_flush(&seq)) {
      return invalid("encoding failed: " + drain_ssl_errors());
    }
  }
  if (!CBB_flush(cbb.get())) return invalid("encoding failed: " + drain_ssl_errors());
  std::string out(reinterpret_cast<const char*>(CBB_data(cbb.get())), CBB_len(cbb.get()));
  if (out.size() > limits.max_extension_bytes) return invalid("encoding is larger than " + std::to_string(limits.max_extension_bytes) + " bytes");
  return out;
}

Result<std::vector<std::string>> decode_attested_claims(std::string_view der, const AttestedClaimsLimits& limits) {
  if (der.size() > limits.max_extension_bytes) {
    return invalid("extension is " + std::to_string(der.size()) + " bytes, more than " + std::to_string(limits.max_extension_bytes));
  }
  CBS in, seq;
  CBS_init(&in, reinterpret_cast<const uint8_t*>(der.data()), der.size());
  // CBS_get_asn1 takes DER only: definite, minimal lengths.
  if (!CBS_get_asn1(&in, &seq, CBS_ASN1_SEQUENCE)) return invalid("not a DER SEQUENCE");
  if (CBS_len(&in) != 0) return invalid("trailing bytes after the SEQUENCE");
  std::vector<std::string> out;
  while (CBS_len(&seq) > 0) {
    if (out.size() == limits.max_claims) return invalid("more than " + std::to_string(limits.max_claims) + " claims");
    CBS str;
    if (!CBS_get_asn1(&seq, &str, CBS_ASN1_UTF8STRING)) return invalid("element " + std::to_string(out.size()) + " is not a DER UTF8String");
    std::string claim(reinterpret_cast<const char*>(CBS_data(&str)), CBS_len(&str));
    if (claim.size() > limits.max_claim_bytes) {
      return invalid("claim " + std::to_string(out.size()) + " is longer than " + std::to_string(limits.max_claim_bytes) + " bytes");
    }
    if (auto p = attested_claim_problem(claim); !p.empty()) return invalid("claim '" + clip(claim) + "' " + p);
    if (!out.empty() && !(out.back() < claim)) return invalid("claims are not in strictly ascending order");
    out.push_back(std::move(claim));
  }
  if (out.empty()) return invalid("empty SEQUENCE (the extension must be omitted instead)");
  return out;
}

const ASN1_OBJECT* attested_claims_object() {
  static const ASN1_OBJECT* const obj = OBJ_txt2obj(kAttestedClaimsOid, /*dont_search_names=*/1);
  return obj;
}

Result<std::vector<std::string>> attested_claims_of(const X509* leaf, const AttestedClaimsLimits& limits) {
  const ASN1_OBJECT* obj = attested_claims_object();
  if (obj == nullptr) return make_error(ErrorCode::kInternal, "attested claims OID does not parse");
  int at = X509_get_ext_by_OBJ(leaf, obj, -1);
  if (at < 0) return std::vector<std::string>{};
  if (X509_get_ext_by_OBJ(leaf, obj, at) >= 0) return invalid("the extension appears more than once");
  const ASN1_OCTET_STRING* value = X509_EXTENSION_get_data(X509_get_ext(leaf, at));
  return decode_attested_claims(
      std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)), ASN1_STRING_length(value)), limits);
}

}  // namespace portcullis::mtls
