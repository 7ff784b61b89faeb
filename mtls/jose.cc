#include "mtls/jose.h"

#include <openssl/base64.h>
#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/rsa.h>

#include <set>
#include <vector>

#include "mtls/ssl_error.h"

namespace portcullis::mtls {
namespace {

constexpr char kUrlAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr unsigned kMinRsaBits = 2048;
constexpr unsigned kMaxRsaBits = 8192;  // bounds the cost of one verification an attacker can ask for

Error invalid(std::string message) {
  std::string detail = drain_ssl_errors();
  return make_error(ErrorCode::kInvalidArgument, detail.empty() ? message : message + ": " + detail);
}

int url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

std::optional<std::string> member_bytes(const nlohmann::json& jwk, const char* name) {
  auto it = jwk.find(name);
  if (it == jwk.end() || !it->is_string()) return std::nullopt;
  return base64url_decode(it->get_ref<const std::string&>());
}

bssl::UniquePtr<BIGNUM> to_bn(const std::string& bytes) {
  return bssl::UniquePtr<BIGNUM>(BN_bin2bn(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), nullptr));
}

std::string bn_bytes(const BIGNUM* bn, size_t len) {
  std::string out(len, '\0');
  if (!BN_bn2bin_padded(reinterpret_cast<uint8_t*>(out.data()), len, bn)) return {};
  return out;
}

Result<bssl::UniquePtr<EVP_PKEY>> ec_jwk(const nlohmann::json& jwk) {
  auto crv = jwk.find("crv");
  if (crv == jwk.end() || !crv->is_string()) return invalid("EC JWK has no crv");
  int nid = *crv == "P-256" ? NID_X9_62_prime256v1 : *crv == "P-384" ? NID_secp384r1 : *crv == "P-521" ? NID_secp521r1 : NID_undef;
  if (nid == NID_undef) return invalid("EC JWK has unsupported crv " + crv->dump());
  bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(nid));
  if (!ec) return invalid("EC_KEY_new_by_curve_name");
  size_t field_len = (EC_GROUP_get_degree(EC_KEY_get0_group(ec.get())) + 7) / 8;
  auto x = member_bytes(jwk, "x");
  auto y = member_bytes(jwk, "y");
  // RFC 7518 §6.2.1.2: coordinates are exactly the field size, which also rules out odd encodings.
  if (!x || !y || x->size() != field_len || y->size() != field_len) return invalid("EC JWK x/y are not base64url of the field size");
  auto bx = to_bn(*x), by = to_bn(*y);
  if (!bx || !by || !EC_KEY_set_public_key_affine_coordinates(ec.get(), bx.get(), by.get())) {
    return invalid("EC JWK point is not on the curve");
  }
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  if (!key || !EVP_PKEY_set1_EC_KEY(key.get(), ec.get())) return invalid("EVP_PKEY_set1_EC_KEY");
  return key;
}

Result<bssl::UniquePtr<EVP_PKEY>> rsa_jwk(const nlohmann::json& jwk) {
  auto n = member_bytes(jwk, "n");
  auto e = member_bytes(jwk, "e");
  if (!n || !e || n->empty() || e->empty() || (*n)[0] == '\0' || (*e)[0] == '\0') {
    return invalid("RSA JWK n/e are not minimal base64url integers");
  }
  bssl::UniquePtr<RSA> rsa(RSA_new());
  auto bn_n = to_bn(*n), bn_e = to_bn(*e);
  if (!rsa || !bn_n || !bn_e) return invalid("RSA JWK");
  if (BN_num_bits(bn_n.get()) < kMinRsaBits || BN_num_bits(bn_n.get()) > kMaxRsaBits) {
    return invalid("RSA JWK modulus must be 2048 to 8192 bits");
  }
  if (!RSA_set0_key(rsa.get(), bn_n.get(), bn_e.get(), nullptr)) return invalid("RSA_set0_key");
  (void)bn_n.release();  // owned by rsa now
  (void)bn_e.release();
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  if (!key || !EVP_PKEY_set1_RSA(key.get(), rsa.get())) return invalid("EVP_PKEY_set1_RSA");
  return key;
}

}  // namespace

std::string base64url_encode(std::span<const uint8_t> data) {
  std::string out;
  out.reserve((data.size() * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    for (int shift : {18, 12, 6, 0}) out += kUrlAlphabet[(v >> shift) & 63];
  }
  size_t rest = data.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t{data[i]} << 16;
    if (rest == 2) v |= uint32_t{data[i + 1]} << 8;
    out += kUrlAlphabet[(v >> 18) & 63];
    out += kUrlAlphabet[(v >> 12) & 63];
    if (rest == 2) out += kUrlAlphabet[(v >> 6) & 63];
  }
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = url_value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;  // non-zero padding bits: not canonical
  return out;
}

std::string base64_std_encode(std::span<const uint8_t> data) {
  size_t len = 0;
  if (!EVP_EncodedLength(&len, data.size())) return {};
  std::string out(len, '\0');
  size_t written = EVP_EncodeBlock(reinterpret_cast<uint8_t*>(out.data()), data.data(), data.size());
  out.resize(written);
  return out;
}

std::optional<nlohmann::json> parse_strict_json(std::string_view text) {
  std::vector<std::set<std::string>> open_objects;
  bool duplicate = false;
  auto cb = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) open_objects.emplace_back();
    if (event == E::object_end && !open_objects.empty()) open_objects.pop_back();
    if (event == E::key && !open_objects.empty() && !open_objects.back().insert(parsed.get<std::string>()).second) {
      duplicate = true;
    }
    return true;
  };
  nlohmann::json doc = nlohmann::json::parse(text, cb, /*allow_exceptions=*/false);
  if (doc.is_discarded() || duplicate) return std::nullopt;
  return doc;
}

Result<bssl::UniquePtr<EVP_PKEY>> jwk_to_public_key(const nlohmann::json& jwk) {
  auto kty = jwk.find("kty");
  if (kty == jwk.end() || !kty->is_string()) return invalid("JWK has no kty");
  if (*kty == "EC") return ec_jwk(jwk);
  if (*kty == "RSA") return rsa_jwk(jwk);
  return make_error(ErrorCode::kNotFound, "unsupported JWK kty " + kty->dump());
}

Status public_key_to_jwk(EVP_PKEY* key, nlohmann::json* out) {
  if (const EC_KEY* ec = EVP_PKEY_get0_EC_KEY(key)) {
    const EC_GROUP* group = EC_KEY_get0_group(ec);
    int nid = EC_GROUP_get_curve_name(group);
    const char* crv = nid == NID_X9_62_prime256v1 ? "P-256" : nid == NID_secp384r1 ? "P-384" : nid == NID_secp521r1 ? "P-521" : nullptr;
    if (crv == nullptr) return invalid("EC key on a curve JWK cannot name");
    bssl::UniquePtr<BIGNUM> x(BN_new()), y(BN_new());
    if (!x || !y || !EC_POINT_get_affine_coordinates_GFp(group, EC_KEY_get0_public_key(ec), x.get(), y.get(), nullptr)) {
      return invalid("EC public key coordinates");
    }
    size_t len = (EC_GROUP_get_degree(group) + 7) / 8;
    (*out)["kty"] = "EC";
    (*out)["crv"] = crv;
    (*out)["x"] = base64url_encode(bn_bytes(x.get(), len));
    (*out)["y"] = base64url_encode(bn_bytes(y.get(), len));
    return {};
  }
  if (const RSA* rsa = EVP_PKEY_get0_RSA(key)) {
    (*out)["kty"] = "RSA";
    (*out)["n"] = base64url_encode(bn_bytes(RSA_get0_n(rsa), BN_num_bytes(RSA_get0_n(rsa))));
    (*out)["e"] = base64url_encode(bn_bytes(RSA_get0_e(rsa), BN_num_bytes(RSA_get0_e(rsa))));
    return {};
  }
  return invalid("only EC and RSA keys can be written as a JWK");
}

Result<std::string> spki_der(EVP_PKEY* key) {
  bssl::ScopedCBB cbb;
  uint8_t* der = nullptr;
  size_t len = 0;
  if (!CBB_init(cbb.get(), 128) || !EVP_marshal_public_key(cbb.get(), key) || !CBB_finish(cbb.get(), &der, &len)) {
    return invalid("encoding SubjectPublicKeyInfo");
  }
  bssl::UniquePtr<uint8_t> owned(der);
  return std::string(reinterpret_cast<const char*>(der), len);
}

int ec_curve_nid(const EVP_PKEY* key) {
  const EC_KEY* ec = EVP_PKEY_get0_EC_KEY(key);
  return ec == nullptr ? NID_undef : EC_GROUP_get_curve_name(EC_KEY_get0_group(ec));
}

std::optional<std::string> ecdsa_der_to_raw(std::span<const uint8_t> der, size_t half_len) {
  bssl::UniquePtr<ECDSA_SIG> sig(ECDSA_SIG_from_bytes(der.data(), der.size()));
  if (!sig) {
    drain_ssl_errors();
    return std::nullopt;
  }
  const BIGNUM *r = nullptr, *s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string out = bn_bytes(r, half_len) + bn_bytes(s, half_len);
  if (out.size() != 2 * half_len) return std::nullopt;
  return out;
}

std::optional<std::string> ecdsa_raw_to_der(std::span<const uint8_t> raw) {
  if (raw.empty() || raw.size() % 2 != 0) return std::nullopt;
  size_t half = raw.size() / 2;
  bssl::UniquePtr<BIGNUM> r(BN_bin2bn(raw.data(), half, nullptr));
  bssl::UniquePtr<BIGNUM> s(BN_bin2bn(raw.data() + half, half, nullptr));
  bssl::UniquePtr<ECDSA_SIG> sig(ECDSA_SIG_new());
  if (!r || !s || !sig || !ECDSA_SIG_set0(sig.get(), r.get(), s.get())) {
    drain_ssl_errors();
    return std::nullopt;
  }
  (void)r.release();  // owned by sig now
  (void)s.release();
  uint8_t* der = nullptr;
  size_t len = 0;
  if (!ECDSA_SIG_to_bytes(&der, &len, sig.get())) {
    drain_ssl_errors();
    return std::nullopt;
  }
  bssl::UniquePtr<uint8_t> owned(der);
  return std::string(reinterpret_cast<const char*>(der), len);
}

}  // namespace portcullis::mtls
