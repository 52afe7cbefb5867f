#include "ktls/record/crypto_info.h"

#include <openssl/crypto.h>

#include <cstring>
#include <utility>

namespace wasi_ktls {
namespace {

static_assert(sizeof(tls12_crypto_info_aes_gcm_128) == 40);
static_assert(sizeof(tls12_crypto_info_aes_gcm_256) == 56);
static_assert(sizeof(tls12_crypto_info_chacha20_poly1305) == 56);

void put_be64(unsigned char* out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<unsigned char>(v & 0xff);
    v >>= 8;
  }
}

// The field offsets are the same within each struct family; filling through a template keeps
// the three layouts from drifting apart.
template <class S>
void fill_gcm(S& s, std::uint16_t version, std::uint16_t cipher_type, TlsVersion tls,
              const DirectionKeys& k) {
  s.info.version = version;
  s.info.cipher_type = cipher_type;
  std::memcpy(s.key, k.key.data(), sizeof(s.key));
  if (tls == TlsVersion::tls13) {
    // RFC 8446 nonce = IV xor seq; the kernel's 12-byte IV is salt || iv.
    std::memcpy(s.salt, k.iv.data(), sizeof(s.salt));
    std::memcpy(s.iv, k.iv.data() + sizeof(s.salt), sizeof(s.iv));
  } else {
    // RFC 5288: nonce = implicit(4) || explicit(8). The explicit part is sent on the wire and
    // must never repeat under a key; the sequence number is the conventional choice (s2n,
    // HAProxy, GnuTLS) and is unique by construction.
    std::memcpy(s.salt, k.iv.data(), sizeof(s.salt));
    put_be64(s.iv, k.seq);
  }
  put_be64(s.rec_seq, k.seq);
}

}  // namespace

std::size_t iv_length(TlsVersion v, Cipher c) {
  return v == TlsVersion::tls12 && c != Cipher::chacha20_poly1305 ? 4 : 12;
}

std::uint16_t kernel_cipher_type(Cipher c) {
  switch (c) {
    case Cipher::aes_128_gcm:
      return TLS_CIPHER_AES_GCM_128;
    case Cipher::aes_256_gcm:
      return TLS_CIPHER_AES_GCM_256;
    case Cipher::chacha20_poly1305:
      return TLS_CIPHER_CHACHA20_POLY1305;
  }
  return 0;
}

socklen_t kernel_crypto_info_size(Cipher c) {
  switch (c) {
    case Cipher::aes_128_gcm:
      return sizeof(tls12_crypto_info_aes_gcm_128);
    case Cipher::aes_256_gcm:
      return sizeof(tls12_crypto_info_aes_gcm_256);
    case Cipher::chacha20_poly1305:
      return sizeof(tls12_crypto_info_chacha20_poly1305);
  }
  return 0;
}

Result<KernelCryptoInfo> KernelCryptoInfo::build(TlsVersion version, Cipher cipher,
                                                 const DirectionKeys& keys) {
  if (version != TlsVersion::tls12 && version != TlsVersion::tls13) {
    return make_error("crypto_info: unsupported TLS version 0x{:04x}",
                      static_cast<unsigned>(version));
  }
  const std::size_t want_key = key_length(cipher);
  if (keys.key_len != want_key) {
    return make_error("crypto_info: {} needs a {}-byte key, got {}", to_string(cipher),
                      want_key, keys.key_len);
  }
  const std::size_t want_iv = iv_length(version, cipher);
  if (keys.iv_len != want_iv) {
    return make_error("crypto_info: TLS {} {} needs a {}-byte IV, got {}", to_string(version),
                      to_string(cipher), want_iv, keys.iv_len);
  }

  KernelCryptoInfo out;
  const auto v = static_cast<std::uint16_t>(version);
  const std::uint16_t type = kernel_cipher_type(cipher);
  switch (cipher) {
    case Cipher::aes_128_gcm:
      fill_gcm(out.u_.aes128, v, type, version, keys);
      break;
    case Cipher::aes_256_gcm:
      fill_gcm(out.u_.aes256, v, type, version, keys);
      break;
    case Cipher::chacha20_poly1305: {
      // RFC 7905 (both versions): nonce = 12-byte IV xor padded seq; no explicit nonce.
      auto& s = out.u_.chacha;
      s.info.version = v;
      s.info.cipher_type = type;
      std::memcpy(s.iv, keys.iv.data(), sizeof(s.iv));
      std::memcpy(s.key, keys.key.data(), sizeof(s.key));
      put_be64(s.rec_seq, keys.seq);
      break;
    }
  }
  out.size_ = kernel_crypto_info_size(cipher);
  return out;
}

KernelCryptoInfo KernelCryptoInfo::zeroed(TlsVersion version, Cipher cipher) {
  DirectionKeys zero;
  zero.key_len = key_length(cipher);
  zero.iv_len = iv_length(version, cipher);
  // Cannot fail: the lengths are the ones build() checks for.
  return std::move(build(version, cipher, zero).value());
}

Result<KernelCryptoInfo> KernelCryptoInfo::from_kernel(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < sizeof(tls_crypto_info)) {
    return make_error("crypto_info from kernel: {} bytes is shorter than the header",
                      bytes.size());
  }
  KernelCryptoInfo out;
  std::memcpy(&out.u_.info, bytes.data(), sizeof(tls_crypto_info));
  Cipher c;
  switch (out.u_.info.cipher_type) {
    case TLS_CIPHER_AES_GCM_128:
      c = Cipher::aes_128_gcm;
      break;
    case TLS_CIPHER_AES_GCM_256:
      c = Cipher::aes_256_gcm;
      break;
    case TLS_CIPHER_CHACHA20_POLY1305:
      c = Cipher::chacha20_poly1305;
      break;
    default:
      return make_error("crypto_info from kernel: unknown cipher_type {}",
                        out.u_.info.cipher_type);
  }
  const socklen_t want = kernel_crypto_info_size(c);
  if (bytes.size() != want) {
    return make_error("crypto_info from kernel: {} bytes for cipher_type {}, expected {}",
                      bytes.size(), out.u_.info.cipher_type, want);
  }
  std::memcpy(&out.u_, bytes.data(), want);
  out.size_ = want;
  return out;
}

KernelCryptoInfo::KernelCryptoInfo(KernelCryptoInfo&& o) noexcept : size_(o.size_) {
  std::memcpy(&u_, &o.u_, sizeof(u_));
  o.wipe();
}

KernelCryptoInfo& KernelCryptoInfo::operator=(KernelCryptoInfo&& o) noexcept {
  if (this != &o) {
    std::memcpy(&u_, &o.u_, sizeof(u_));
    size_ = o.size_;
    o.wipe();
  }
  return *this;
}

KernelCryptoInfo::~KernelCryptoInfo() { wipe(); }

void KernelCryptoInfo::wipe() {
  OPENSSL_cleanse(&u_, sizeof(u_));
  size_ = 0;
}

std::span<const std::uint8_t> KernelCryptoInfo::bytes() const {
  return {reinterpret_cast<const std::uint8_t*>(&u_), size_};
}

namespace {
template <std::size_t N>
std::span<const std::uint8_t> field(const unsigned char (&a)[N]) {
  return {reinterpret_cast<const std::uint8_t*>(a), N};
}
}  // namespace

std::span<const std::uint8_t> KernelCryptoInfo::iv() const {
  switch (u_.info.cipher_type) {
    case TLS_CIPHER_AES_GCM_128:
      return field(u_.aes128.iv);
    case TLS_CIPHER_AES_GCM_256:
      return field(u_.aes256.iv);
    case TLS_CIPHER_CHACHA20_POLY1305:
      return field(u_.chacha.iv);
  }
  return {};
}

std::span<const std::uint8_t> KernelCryptoInfo::key() const {
  switch (u_.info.cipher_type) {
    case TLS_CIPHER_AES_GCM_128:
      return field(u_.aes128.key);
    case TLS_CIPHER_AES_GCM_256:
      return field(u_.aes256.key);
    case TLS_CIPHER_CHACHA20_POLY1305:
      return field(u_.chacha.key);
  }
  return {};
}

std::span<const std::uint8_t> KernelCryptoInfo::salt() const {
  switch (u_.info.cipher_type) {
    case TLS_CIPHER_AES_GCM_128:
      return field(u_.aes128.salt);
    case TLS_CIPHER_AES_GCM_256:
      return field(u_.aes256.salt);
  }
  return {};  // ChaCha20 has no salt
}

std::span<const std::uint8_t> KernelCryptoInfo::rec_seq_bytes() const {
  switch (u_.info.cipher_type) {
    case TLS_CIPHER_AES_GCM_128:
      return field(u_.aes128.rec_seq);
    case TLS_CIPHER_AES_GCM_256:
      return field(u_.aes256.rec_seq);
    case TLS_CIPHER_CHACHA20_POLY1305:
      return field(u_.chacha.rec_seq);
  }
  return {};
}

std::uint64_t KernelCryptoInfo::rec_seq() const {
  std::uint64_t v = 0;
  for (std::uint8_t b : rec_seq_bytes()) v = (v << 8) | b;
  return v;
}

}  // namespace wasi_ktls
