// The TLS versions and AEAD ciphers this project can hand to the kernel, and their names.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace wasi_ktls {

enum class TlsVersion : std::uint16_t { tls12 = 0x0303, tls13 = 0x0304 };

enum class Cipher { aes_128_gcm, aes_256_gcm, chacha20_poly1305 };

// Which end of the connection we are.
enum class Role { client, server };

// A connection's sending (tx) or receiving (rx) side, each with its own keys.
enum class Direction { tx, rx };

inline constexpr std::array kAllVersions{TlsVersion::tls12, TlsVersion::tls13};
inline constexpr std::array kAllCiphers{Cipher::aes_128_gcm, Cipher::aes_256_gcm,
                                        Cipher::chacha20_poly1305};

// "1.2" / "1.3": the spelling of the CLI, the JSON and the logs.
std::string_view to_string(TlsVersion v);
// "AES-128-GCM" / "AES-256-GCM" / "CHACHA20-POLY1305".
std::string_view to_string(Cipher c);
// "tx" / "rx".
std::string_view to_string(Direction d);

std::optional<TlsVersion> parse_version(std::string_view s);
std::optional<Cipher> parse_cipher(std::string_view s);

// Key length in bytes (16 or 32).
std::size_t key_length(Cipher c);

}  // namespace wasi_ktls
