// The kernel's view of one direction's keys: a `tls12_crypto_info_*` struct laid out exactly as
// setsockopt(SOL_TLS, TLS_TX|TLS_RX) wants it, built to the kernel's nonce model. Holds key
// material, so it is wiped on destruction and on move.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <span>

#include "base/result.h"
#include "handshake/tls_params.h"
#include "handshake/traffic_keys.h"
#include "ktls/record/tls_uapi.h"

namespace wasi_ktls {

class KernelCryptoInfo {
 public:
  // Maps `keys` (one direction) to the kernel struct:
  //   TLS 1.3 AES-GCM:      salt = IV[0..4], iv = IV[4..12]
  //   ChaCha20 (1.2, 1.3):  iv = the 12-byte IV, no salt
  //   TLS 1.2 AES-GCM:      salt = 4-byte implicit IV, iv = big-endian seq (explicit nonce start)
  //   rec_seq = big-endian number of the next record. Key/IV lengths are checked.
  static Result<KernelCryptoInfo> build(TlsVersion version, Cipher cipher,
                                        const DirectionKeys& keys);
  static Result<KernelCryptoInfo> build(const TrafficKeys& keys, Direction d) {
    return build(keys.version, keys.cipher, d == Direction::tx ? keys.tx : keys.rx);
  }
  // All-zero key material: the kernel validates version, cipher and length and allocates the
  // AEAD without needing a real key, which is all the probe asks of it.
  static KernelCryptoInfo zeroed(TlsVersion version, Cipher cipher);
  // Adopts bytes the kernel returned from getsockopt(TLS_TX|TLS_RX); checks the header and size.
  static Result<KernelCryptoInfo> from_kernel(std::span<const std::uint8_t> bytes);

  KernelCryptoInfo(KernelCryptoInfo&& o) noexcept;
  KernelCryptoInfo& operator=(KernelCryptoInfo&& o) noexcept;
  KernelCryptoInfo(const KernelCryptoInfo&) = delete;
  KernelCryptoInfo& operator=(const KernelCryptoInfo&) = delete;
  ~KernelCryptoInfo();

  // What setsockopt takes: the struct and exactly its size (40, 56 or 56).
  const void* data() const { return &u_; }
  socklen_t size() const { return size_; }
  std::span<const std::uint8_t> bytes() const;

  std::uint16_t version() const { return u_.info.version; }
  std::uint16_t cipher_type() const { return u_.info.cipher_type; }
  std::span<const std::uint8_t> iv() const;
  std::span<const std::uint8_t> key() const;
  std::span<const std::uint8_t> salt() const;  // empty for ChaCha20
  std::span<const std::uint8_t> rec_seq_bytes() const;
  std::uint64_t rec_seq() const;  // decoded big-endian

  // The largest of the structs, for getsockopt buffers.
  static constexpr socklen_t kMaxSize = sizeof(tls12_crypto_info_aes_gcm_256);

 private:
  KernelCryptoInfo() = default;
  void wipe();

  union Storage {
    tls_crypto_info info;
    tls12_crypto_info_aes_gcm_128 aes128;
    tls12_crypto_info_aes_gcm_256 aes256;
    tls12_crypto_info_chacha20_poly1305 chacha;
  } u_{};
  socklen_t size_ = 0;
};

// The IV bytes DirectionKeys carries: 4 for TLS 1.2 AES-GCM (the implicit part), else 12.
std::size_t iv_length(TlsVersion v, Cipher c);

// The kernel's cipher_type for `c` (51, 52, 54) and the struct size it requires.
std::uint16_t kernel_cipher_type(Cipher c);
socklen_t kernel_crypto_info_size(Cipher c);

}  // namespace wasi_ktls
