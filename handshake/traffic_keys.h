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

struct TrafficKeys {
  TlsVersion version = TlsVersion::tls13;
  Cipher cipher = Cipher::aes_128_gcm;
  DirectionKeys tx;
  DirectionKeys rx;
};

}  // namespace wasi_ktls
