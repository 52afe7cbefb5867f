#include "handshake/tls_params.h"

namespace wasi_ktls {

std::string_view to_string(TlsVersion v) { return v == TlsVersion::tls12 ? "1.2" : "1.3"; }

std::string_view to_string(Cipher c) {
  switch (c) {
    case Cipher::aes_128_gcm: return "AES-128-GCM";
    case Cipher::aes_256_gcm: return "AES-256-GCM";
    case Cipher::chacha20_poly1305: return "CHACHA20-POLY1305";
  }
  return "?";
}

std::string_view to_string(Direction d) { return d == Direction::tx ? "tx" : "rx"; }

std::optional<TlsVersion> parse_version(std::string_view s) {
  if (s == "1.2") return TlsVersion::tls12;
  if (s == "1.3") return TlsVersion::tls13;
  return std::nullopt;
}

std::optional<Cipher> parse_cipher(std::string_view s) {
  for (Cipher c : kAllCiphers)
    if (to_string(c) == s) return c;
  return std::nullopt;
}

std::size_t key_length(Cipher c) { return c == Cipher::aes_128_gcm ? 16 : 32; }

}  // namespace wasi_ktls
