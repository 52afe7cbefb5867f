// The record keys of the AEAD suites we hand to the kernel, derived from handshake secrets:
// TLS 1.3 per RFC 8446 §7.1/§7.3 (HKDF-Expand-Label), TLS 1.2 per RFC 5246 §6.3 (key block).
// Pure functions of their inputs; no SSL object involved.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "base/result.h"
#include "handshake/tls_params.h"
#include "handshake/traffic_keys.h"

namespace wasi_ktls {

// The suite hash for `cipher` in both versions: "SHA384" for AES-256-GCM, else "SHA256"
// (every TLS 1.2 AES-256-GCM suite uses a SHA-384 PRF, every AES-128-GCM and ChaCha20 suite
// SHA-256; likewise the three TLS 1.3 suites).
std::string_view suite_digest(Cipher cipher);
std::size_t suite_hash_length(Cipher cipher);  // 48 or 32

// HKDF-Expand-Label(secret, label, context, out.size()) with the "tls13 " prefix.
Status hkdf_expand_label(Cipher cipher, std::span<const std::uint8_t> secret,
                         std::string_view label, std::span<const std::uint8_t> context,
                         std::span<std::uint8_t> out);

// TLS 1.3: key and IV of a traffic secret; keeps the secret (for KeyUpdate), seq as given.
Result<DirectionKeys> tls13_direction_keys(Cipher cipher, std::span<const std::uint8_t> secret,
                                           std::uint64_t seq = 0);

// TLS 1.3 KeyUpdate: secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length).
Status next_traffic_secret(Cipher cipher, std::span<const std::uint8_t> secret,
                           std::span<std::uint8_t> next);
// The keys after a KeyUpdate in that direction: next secret, its key/IV, seq 0.
Result<DirectionKeys> tls13_next_direction_keys(Cipher cipher, const DirectionKeys& current);

// TLS 1.2 AEAD: key_block = PRF(master, "key expansion", server_random || client_random),
// split client_key, server_key, client_IV, server_IV (IV 4 bytes for GCM, 12 for ChaCha20).
// Returns the keys from `is_client`'s point of view, both with seq 1 (Finished was record 0).
Result<TrafficKeys> tls12_traffic_keys(Cipher cipher, bool is_client,
                                       std::span<const std::uint8_t> master_secret,
                                       std::span<const std::uint8_t> client_random,
                                       std::span<const std::uint8_t> server_random);

}  // namespace wasi_ktls
