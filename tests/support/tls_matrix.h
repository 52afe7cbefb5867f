// The TLS version x AEAD matrix the end-to-end tests run, the names OpenSSL gives each suite,
// and the payloads moved through each combination.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "handshake/tls_params.h"

namespace wasi_ktls::test {

using Bytes = std::vector<std::uint8_t>;

// "TLS 1.3 AES-128-GCM"; substr(4) is the part our transport reasons quote.
std::string combo_name(TlsVersion v, Cipher c);

// OpenSSL's names: the TLS 1.3 suite, and the TLS 1.2 ECDHE-ECDSA cipher (the test PKI's keys
// are ECDSA).
const char* tls13_suite(Cipher c);
const char* tls12_cipher(Cipher c);
// The one of the two that version v negotiates.
const char* suite_name(TlsVersion v, Cipher c);

// Empty, one byte, both sides of one full record (16 KiB), and 8 MiB.
inline const std::vector<std::size_t> kPayloads = {0, 1, 16383, 16384, 16385, 8u << 20};

// Reproducible noise: the same (n, seed) always gives the same bytes.
Bytes random_bytes(std::size_t n, std::uint64_t seed);

inline std::string_view as_text(const Bytes& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace wasi_ktls::test
