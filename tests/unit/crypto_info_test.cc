// crypto_info layouts: every byte of the struct the kernel gets, for each version x cipher.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "ktls/record/crypto_info.h"
#include "ktls/record/record_limit.h"

using namespace wasi_ktls;

namespace {

DirectionKeys keys_for(TlsVersion v, Cipher c, std::uint64_t seq) {
  DirectionKeys k;
  k.key_len = key_length(c);
  for (std::size_t i = 0; i < k.key_len; ++i) k.key[i] = static_cast<std::uint8_t>(0xA0 + i);
  k.iv_len = (v == TlsVersion::tls12 && c != Cipher::chacha20_poly1305) ? 4 : 12;
  for (std::size_t i = 0; i < k.iv_len; ++i) k.iv[i] = static_cast<std::uint8_t>(0x10 + i);
  k.seq = seq;
  return k;
}

std::vector<std::uint8_t> v(std::span<const std::uint8_t> s) { return {s.begin(), s.end()}; }

std::vector<std::uint8_t> range(std::uint8_t from, std::size_t n) {
  std::vector<std::uint8_t> r(n);
  for (std::size_t i = 0; i < n; ++i) r[i] = static_cast<std::uint8_t>(from + i);
  return r;
}

const std::vector<std::uint8_t> kSeqBytes = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
constexpr std::uint64_t kSeq = 0x0102030405060708;

// version(2, host order) | cipher_type(2, host order) | iv | key | salt | rec_seq
std::vector<std::uint8_t> header(std::uint16_t version, std::uint16_t type) {
  std::vector<std::uint8_t> h(4);
  std::memcpy(h.data(), &version, 2);
  std::memcpy(h.data() + 2, &type, 2);
  return h;
}

std::vector<std::uint8_t> cat(std::initializer_list<std::vector<std::uint8_t>> parts) {
  std::vector<std::uint8_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace

TEST_CASE("TLS 1.3 AES-128-GCM: salt = IV[0..4], iv = IV[4..12], 40 bytes") {
  auto info = KernelCryptoInfo::build(TlsVersion::tls13, Cipher::aes_128_gcm,
                                      keys_for(TlsVersion::tls13, Cipher::aes_128_gcm, kSeq));
  REQUIRE(info.ok());
  CHECK(info->size() == 40);
  CHECK(info->version() == 0x0304);
  CHECK(info->cipher_type() == 51);
  CHECK(v(info->salt()) == range(0x10, 4));
  CHECK(v(info->iv()) == range(0x14, 8));
  CHECK(v(info->key()) == range(0xA0, 16));
  CHECK(v(info->rec_seq_bytes()) == kSeqBytes);
  CHECK(info->rec_seq() == kSeq);
  CHECK(v(info->bytes()) ==
        cat({header(0x0304, 51), range(0x14, 8), range(0xA0, 16), range(0x10, 4), kSeqBytes}));
}

TEST_CASE("TLS 1.3 AES-256-GCM: 56 bytes, 32-byte key") {
  auto info = KernelCryptoInfo::build(TlsVersion::tls13, Cipher::aes_256_gcm,
                                      keys_for(TlsVersion::tls13, Cipher::aes_256_gcm, kSeq));
  REQUIRE(info.ok());
  CHECK(info->size() == 56);
  CHECK(v(info->bytes()) ==
        cat({header(0x0304, 52), range(0x14, 8), range(0xA0, 32), range(0x10, 4), kSeqBytes}));
}

TEST_CASE("ChaCha20-Poly1305 (1.2 and 1.3): iv = the 12-byte IV, no salt, 56 bytes") {
  for (TlsVersion ver : kAllVersions) {
    CAPTURE(to_string(ver));
    auto info = KernelCryptoInfo::build(ver, Cipher::chacha20_poly1305,
                                        keys_for(ver, Cipher::chacha20_poly1305, kSeq));
    REQUIRE(info.ok());
    CHECK(info->size() == 56);
    CHECK(info->cipher_type() == 54);
    CHECK(info->salt().empty());
    CHECK(v(info->iv()) == range(0x10, 12));
    CHECK(v(info->bytes()) == cat({header(static_cast<std::uint16_t>(ver), 54), range(0x10, 12),
                                   range(0xA0, 32), kSeqBytes}));
  }
}

TEST_CASE("TLS 1.2 AES-GCM: salt = implicit IV, iv = big-endian seq (explicit nonce)") {
  for (Cipher c : {Cipher::aes_128_gcm, Cipher::aes_256_gcm}) {
    CAPTURE(to_string(c));
    auto info = KernelCryptoInfo::build(TlsVersion::tls12, c, keys_for(TlsVersion::tls12, c, 1));
    REQUIRE(info.ok());
    const std::vector<std::uint8_t> one = {0, 0, 0, 0, 0, 0, 0, 1};
    CHECK(info->version() == 0x0303);
    CHECK(v(info->salt()) == range(0x10, 4));
    CHECK(v(info->iv()) == one);
    CHECK(v(info->rec_seq_bytes()) == one);
    CHECK(v(info->bytes()) == cat({header(0x0303, kernel_cipher_type(c)), one,
                                   range(0xA0, key_length(c)), range(0x10, 4), one}));
  }
}

TEST_CASE("wrong key or IV length is refused") {
  auto k = keys_for(TlsVersion::tls13, Cipher::aes_128_gcm, 0);
  k.key_len = 32;
  auto r = KernelCryptoInfo::build(TlsVersion::tls13, Cipher::aes_128_gcm, k);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("16-byte key") != std::string::npos);

  auto k2 = keys_for(TlsVersion::tls13, Cipher::aes_128_gcm, 0);  // 12-byte IV
  auto r2 = KernelCryptoInfo::build(TlsVersion::tls12, Cipher::aes_128_gcm, k2);
  REQUIRE_FALSE(r2.ok());
  CHECK(r2.error().message.find("4-byte IV") != std::string::npos);
}

TEST_CASE("TrafficKeys direction selects tx or rx") {
  TrafficKeys tk;
  tk.version = TlsVersion::tls13;
  tk.cipher = Cipher::chacha20_poly1305;
  tk.tx = keys_for(tk.version, tk.cipher, 7);
  tk.rx = keys_for(tk.version, tk.cipher, 9);
  tk.rx.key[0] = 0xEE;
  auto tx = KernelCryptoInfo::build(tk, Direction::tx);
  auto rx = KernelCryptoInfo::build(tk, Direction::rx);
  REQUIRE(tx.ok());
  REQUIRE(rx.ok());
  CHECK(tx->rec_seq() == 7);
  CHECK(rx->rec_seq() == 9);
  CHECK(tx->key()[0] == 0xA0);
  CHECK(rx->key()[0] == 0xEE);
}

TEST_CASE("from_kernel round-trips and checks size; move wipes the source") {
  auto built = KernelCryptoInfo::build(TlsVersion::tls13, Cipher::aes_256_gcm,
                                       keys_for(TlsVersion::tls13, Cipher::aes_256_gcm, kSeq));
  REQUIRE(built.ok());
  const auto bytes = v(built->bytes());
  auto back = KernelCryptoInfo::from_kernel(bytes);
  REQUIRE(back.ok());
  CHECK(v(back->bytes()) == bytes);
  CHECK(back->rec_seq() == kSeq);

  auto short_bytes = bytes;
  short_bytes.resize(40);
  CHECK_FALSE(KernelCryptoInfo::from_kernel(short_bytes).ok());

  KernelCryptoInfo moved = std::move(*back);
  CHECK(moved.rec_seq() == kSeq);
  CHECK(back->size() == 0);  // NOLINT(bugprone-use-after-move): checking the wipe
  CHECK(back->cipher_type() == 0);
}

TEST_CASE("record budget: ceil(bytes/16384) per send, last record reserved") {
  CHECK(records_for_bytes(0) == 0);
  CHECK(records_for_bytes(1) == 1);
  CHECK(records_for_bytes(16384) == 1);
  CHECK(records_for_bytes(16385) == 2);
  CHECK(records_for_bytes(8u << 20) == 512);

  RecordBudget b(0, 3);
  CHECK(b.sendable_bytes(100000) == 2 * 16384);
  b.add(2);
  CHECK(b.sendable_bytes(1) == 0);  // the third record is close_notify's

  RecordBudget started(5, 3);  // keys already past the limit
  CHECK(started.sendable_bytes(1) == 0);

  CHECK(default_record_limit(TlsVersion::tls13, Cipher::aes_128_gcm) == 23726566);
  CHECK(default_record_limit(TlsVersion::tls12, Cipher::aes_256_gcm) == 23726566);
  CHECK(default_record_limit(TlsVersion::tls13, Cipher::chacha20_poly1305) >
        (std::uint64_t{1} << 60));
}
