// What a finished handshake hands to the kernel: per direction, the AEAD key, the static IV
// and the number of the next record. Wiped on destruction.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "handshake/tls_params.h"

namespace wasi_ktls {

struct DirectionKeys {
  std::array<std::uint8_t, 32> key{};
  std::array<std::uint8_t, 12> iv{};  // TLS 1.3 and ChaCha20: 12 bytes; TLS 1.2 AES-GCM: the
                                      // 4-byte implicit part (the kernel's "salt")
  std::array<std::uint8_t, 48> secret{};  // TLS 1.3 traffic secret (for KeyUpdate); empty in 1.2
  std::size_t key_len = 0;
  std::size_t iv_len = 0;
  std::size_t secret_len = 0;
  std::uint64_t seq = 0;  // next record number under this key

  DirectionKeys() = default;
  DirectionKeys(const DirectionKeys&);
  DirectionKeys& operator=(const DirectionKeys&);
  ~DirectionKeys();
};

// TLS 1.3: the two application traffic secrets, all that a kernel able to rekey needs to
// derive the next keys after a KeyUpdate (traffic_secret_N+1 from traffic_secret_N). Kept only
// there, and wiped when dropped; not copyable, so no stray copy exists.
struct TrafficSecrets {
  std::array<std::uint8_t, 48> tx{};
  std::array<std::uint8_t, 48> rx{};
  std::size_t len = 0;  // the suite's hash length

  TrafficSecrets() = default;
  TrafficSecrets(const TrafficSecrets&) = delete;
  TrafficSecrets& operator=(const TrafficSecrets&) = delete;
  ~TrafficSecrets();
};

struct TrafficKeys {
  TlsVersion version = TlsVersion::tls13;
  Cipher cipher = Cipher::aes_128_gcm;
  DirectionKeys tx;
  DirectionKeys rx;
};

}  // namespace wasi_ktls
