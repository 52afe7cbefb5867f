#include "tests/support/tls_matrix.h"

#include <random>

namespace wasi_ktls::test {

std::string combo_name(TlsVersion v, Cipher c) {
  return "TLS " + std::string(to_string(v)) + " " + std::string(to_string(c));
}

const char* tls13_suite(Cipher c) {
  switch (c) {
    case Cipher::aes_128_gcm: return "TLS_AES_128_GCM_SHA256";
    case Cipher::aes_256_gcm: return "TLS_AES_256_GCM_SHA384";
    case Cipher::chacha20_poly1305: return "TLS_CHACHA20_POLY1305_SHA256";
  }
  return "";
}

const char* tls12_cipher(Cipher c) {
  switch (c) {
    case Cipher::aes_128_gcm: return "ECDHE-ECDSA-AES128-GCM-SHA256";
    case Cipher::aes_256_gcm: return "ECDHE-ECDSA-AES256-GCM-SHA384";
    case Cipher::chacha20_poly1305: return "ECDHE-ECDSA-CHACHA20-POLY1305";
  }
  return "";
}

const char* suite_name(TlsVersion v, Cipher c) {
  return v == TlsVersion::tls13 ? tls13_suite(c) : tls12_cipher(c);
}

Bytes random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  Bytes b(n);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  return b;
}

}  // namespace wasi_ktls::test
