#include "handshake/key_schedule.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <algorithm>
#include <array>
#include <memory>
#include <string>

namespace wasi_ktls {
namespace {

struct KdfCtxFree {
  void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
};

std::string last_openssl_error() {
  unsigned long e = ERR_get_error();
  std::string s = "unknown error";
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    s = buf;
  }
  ERR_clear_error();
  return s;
}

// Runs EVP_KDF `name` with `params` into `out`.
Status run_kdf(const char* name, const OSSL_PARAM* params, std::span<std::uint8_t> out) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, name, nullptr);
  if (kdf == nullptr) return make_error("KDF {} unavailable: {}", name, last_openssl_error());
  std::unique_ptr<EVP_KDF_CTX, KdfCtxFree> ctx(EVP_KDF_CTX_new(kdf));
  EVP_KDF_free(kdf);
  if (!ctx) return make_error("KDF {}: {}", name, last_openssl_error());
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1)
    return make_error("KDF {} failed: {}", name, last_openssl_error());
  return {};
}

std::size_t tls12_iv_length(Cipher c) { return c == Cipher::chacha20_poly1305 ? 12 : 4; }

}  // namespace

std::string_view suite_digest(Cipher cipher) {
  return cipher == Cipher::aes_256_gcm ? "SHA384" : "SHA256";
}

std::size_t suite_hash_length(Cipher cipher) { return cipher == Cipher::aes_256_gcm ? 48 : 32; }

Status hkdf_expand_label(Cipher cipher, std::span<const std::uint8_t> secret,
                         std::string_view label, std::span<const std::uint8_t> context,
                         std::span<std::uint8_t> out) {
  static constexpr std::string_view kPrefix = "tls13 ";
  if (out.size() > 0xffff || kPrefix.size() + label.size() > 255 || context.size() > 255)
    return make_error("HKDF-Expand-Label: argument too long");
  // struct { uint16 length; opaque label<7..255>; opaque context<0..255>; } HkdfLabel;
  std::array<std::uint8_t, 2 + 1 + 255 + 1 + 255> info{};
  std::size_t n = 0;
  info[n++] = static_cast<std::uint8_t>(out.size() >> 8);
  info[n++] = static_cast<std::uint8_t>(out.size());
  info[n++] = static_cast<std::uint8_t>(kPrefix.size() + label.size());
  for (char ch : kPrefix) info[n++] = static_cast<std::uint8_t>(ch);
  for (char ch : label) info[n++] = static_cast<std::uint8_t>(ch);
  info[n++] = static_cast<std::uint8_t>(context.size());
  for (std::uint8_t b : context) info[n++] = b;

  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  std::string digest(suite_digest(cipher));
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest.data(), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(secret.data()),
                                        secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), n),
      OSSL_PARAM_construct_end(),
  };
  return run_kdf("HKDF", params, out);
}

Result<DirectionKeys> tls13_direction_keys(Cipher cipher, std::span<const std::uint8_t> secret,
                                           std::uint64_t seq) {
  DirectionKeys k;
  if (secret.size() != suite_hash_length(cipher) || secret.size() > k.secret.size())
    return make_error("TLS 1.3 traffic secret has {} bytes, {} expected for {}", secret.size(),
                      suite_hash_length(cipher), to_string(cipher));
  k.key_len = key_length(cipher);
  k.iv_len = 12;
  if (auto s = hkdf_expand_label(cipher, secret, "key", {}, std::span(k.key).first(k.key_len)); !s)
    return s.error();
  if (auto s = hkdf_expand_label(cipher, secret, "iv", {}, std::span(k.iv).first(k.iv_len)); !s)
    return s.error();
  std::copy(secret.begin(), secret.end(), k.secret.begin());
  k.secret_len = secret.size();
  k.seq = seq;
  return k;
}

Status next_traffic_secret(Cipher cipher, std::span<const std::uint8_t> secret,
                           std::span<std::uint8_t> next) {
  if (next.size() != suite_hash_length(cipher) || secret.size() != next.size())
    return make_error("KeyUpdate: traffic secret length does not match {}", to_string(cipher));
  return hkdf_expand_label(cipher, secret, "traffic upd", {}, next);
}

Result<DirectionKeys> tls13_next_direction_keys(Cipher cipher, const DirectionKeys& current) {
  std::array<std::uint8_t, 48> next{};
  auto len = suite_hash_length(cipher);
  if (current.secret_len != len) return make_error("KeyUpdate: no TLS 1.3 traffic secret held");
  auto s = next_traffic_secret(cipher, std::span(current.secret).first(len), std::span(next).first(len));
  Result<DirectionKeys> r = s ? tls13_direction_keys(cipher, std::span(next).first(len), 0)
                              : Result<DirectionKeys>(s.error());
  OPENSSL_cleanse(next.data(), next.size());
  return r;
}

Result<TrafficKeys> tls12_traffic_keys(Cipher cipher, bool is_client,
                                       std::span<const std::uint8_t> master_secret,
                                       std::span<const std::uint8_t> client_random,
                                       std::span<const std::uint8_t> server_random) {
  if (master_secret.size() != 48 || client_random.size() != 32 || server_random.size() != 32)
    return make_error("TLS 1.2 key expansion: master secret or randoms have the wrong length");
  const std::size_t kl = key_length(cipher), ivl = tls12_iv_length(cipher);
  std::array<std::uint8_t, 2 * (32 + 12)> block{};
  std::span<std::uint8_t> out = std::span(block).first(2 * (kl + ivl));

  static constexpr char kLabel[] = "key expansion";
  std::string digest(suite_digest(cipher));
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest.data(), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET,
                                        const_cast<std::uint8_t*>(master_secret.data()),
                                        master_secret.size()),
      // Several SEED parameters are concatenated: label || server_random || client_random.
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, const_cast<char*>(kLabel),
                                        sizeof kLabel - 1),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED,
                                        const_cast<std::uint8_t*>(server_random.data()),
                                        server_random.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED,
                                        const_cast<std::uint8_t*>(client_random.data()),
                                        client_random.size()),
      OSSL_PARAM_construct_end(),
  };
  Status s = run_kdf("TLS1-PRF", params, out);
  if (!s) {
    OPENSSL_cleanse(block.data(), block.size());
    return s.error();
  }
  TrafficKeys keys;
  keys.version = TlsVersion::tls12;
  keys.cipher = cipher;
  DirectionKeys& client = is_client ? keys.tx : keys.rx;
  DirectionKeys& server = is_client ? keys.rx : keys.tx;
  const std::uint8_t* p = block.data();
  std::copy(p, p + kl, client.key.begin());
  std::copy(p + kl, p + 2 * kl, server.key.begin());
  std::copy(p + 2 * kl, p + 2 * kl + ivl, client.iv.begin());
  std::copy(p + 2 * kl + ivl, p + 2 * kl + 2 * ivl, server.iv.begin());
  OPENSSL_cleanse(block.data(), block.size());
  for (DirectionKeys* d : {&keys.tx, &keys.rx}) {
    d->key_len = kl;
    d->iv_len = ivl;
    d->seq = 1;
  }
  return keys;
}

}  // namespace wasi_ktls
