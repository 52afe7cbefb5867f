// The key schedule against published vectors: RFC 8448 §3 "Simple 1-RTT Handshake"
// (TLS_AES_128_GCM_SHA256) for TLS 1.3, and the TLS 1.2 key-block layout.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>
#include <vector>

#include "handshake/key_schedule.h"

using namespace wasi_ktls;

namespace {

std::vector<std::uint8_t> hex(std::string_view s) {
  std::vector<std::uint8_t> out;
  int hi = -1;
  for (char c : s) {
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) continue;  // spaces
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(hi << 4 | v));
      hi = -1;
    }
  }
  return out;
}

std::vector<std::uint8_t> key_of(const DirectionKeys& k) {
  return {k.key.begin(), k.key.begin() + static_cast<long>(k.key_len)};
}
std::vector<std::uint8_t> iv_of(const DirectionKeys& k) {
  return {k.iv.begin(), k.iv.begin() + static_cast<long>(k.iv_len)};
}

struct Rfc8448Case {
  const char* name;
  const char* secret;
  const char* key;
  const char* iv;
};

// RFC 8448 section 3, copied from the trace ({server}/{client} "derive write traffic keys").
constexpr Rfc8448Case kRfc8448[] = {
    {"server handshake",
     "b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38",
     "3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc", "5d 31 3e b2 67 12 76 ee 13 00 0b 30"},
    {"client handshake",
     "b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f 3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21",
     "db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01", "5b d3 c7 1b 83 6e 0b 76 bb 73 26 5f"},
    {"server application",
     "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43",
     "9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56", "cf 78 2b 88 dd 83 54 9a ad f1 e9 84"},
    {"client application",
     "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5",
     "17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51", "5b 78 92 3d ee 08 57 90 33 e5 23 d9"},
};

}  // namespace

TEST_CASE("TLS 1.3 traffic keys match RFC 8448 section 3") {
  for (const auto& c : kRfc8448) {
    CAPTURE(c.name);
    auto secret = hex(c.secret);
    REQUIRE(secret.size() == 32);
    auto k = tls13_direction_keys(Cipher::aes_128_gcm, secret, 7);
    REQUIRE_MESSAGE(k.ok(), (k.ok() ? "" : k.error().message));
    CHECK(key_of(*k) == hex(c.key));
    CHECK(iv_of(*k) == hex(c.iv));
    CHECK(k->seq == 7);
    CHECK(std::vector<std::uint8_t>(k->secret.begin(), k->secret.begin() + 32) == secret);
    CHECK(k->secret_len == 32);
  }
}

TEST_CASE("HKDF-Expand-Label encodes the label as RFC 8448 logs it") {
  // RFC 8448 logs "key info (13 octets): 00 10 09 74 6c 73 31 33 20 6b 65 79 00" — the
  // expansion of the same PRK with that info via plain HKDF must agree with ours; we check
  // the result instead of the info, through the server application key above, and here that
  // a different label gives a different output (the label is really used).
  auto secret = hex(kRfc8448[2].secret);
  std::vector<std::uint8_t> a(16), b(16);
  REQUIRE(hkdf_expand_label(Cipher::aes_128_gcm, secret, "key", {}, a).ok());
  REQUIRE(hkdf_expand_label(Cipher::aes_128_gcm, secret, "kez", {}, b).ok());
  CHECK(a == hex(kRfc8448[2].key));
  CHECK(a != b);
}

TEST_CASE("suite digests and lengths") {
  CHECK(suite_digest(Cipher::aes_128_gcm) == "SHA256");
  CHECK(suite_digest(Cipher::aes_256_gcm) == "SHA384");
  CHECK(suite_digest(Cipher::chacha20_poly1305) == "SHA256");
  for (Cipher c : kAllCiphers) {
    std::vector<std::uint8_t> secret(suite_hash_length(c), 0x42);
    auto k = tls13_direction_keys(c, secret);
    REQUIRE(k.ok());
    CHECK(k->key_len == key_length(c));
    CHECK(k->iv_len == 12);
    CHECK(k->seq == 0);
  }
  // A secret of the wrong length for the suite is refused, not silently used.
  std::vector<std::uint8_t> short_secret(32, 1);
  CHECK_FALSE(tls13_direction_keys(Cipher::aes_256_gcm, short_secret).ok());
}

TEST_CASE("KeyUpdate derives a new secret and keys from it, seq 0") {
  auto secret = hex(kRfc8448[3].secret);
  auto k0 = tls13_direction_keys(Cipher::aes_128_gcm, secret, 1000);
  REQUIRE(k0.ok());
  auto k1 = tls13_next_direction_keys(Cipher::aes_128_gcm, *k0);
  REQUIRE(k1.ok());
  std::vector<std::uint8_t> expected_next(32);
  REQUIRE(hkdf_expand_label(Cipher::aes_128_gcm, secret, "traffic upd", {}, expected_next).ok());
  CHECK(std::vector<std::uint8_t>(k1->secret.begin(), k1->secret.begin() + 32) == expected_next);
  auto direct = tls13_direction_keys(Cipher::aes_128_gcm, expected_next);
  REQUIRE(direct.ok());
  CHECK(key_of(*k1) == key_of(*direct));
  CHECK(iv_of(*k1) == iv_of(*direct));
  CHECK(key_of(*k1) != key_of(*k0));
  CHECK(k1->seq == 0);
}

TEST_CASE("TLS 1.2 key block: layout, mirror image, lengths") {
  std::vector<std::uint8_t> master(48), cr(32), sr(32);
  for (std::size_t i = 0; i < master.size(); ++i) master[i] = static_cast<std::uint8_t>(i);
  for (std::size_t i = 0; i < 32; ++i) {
    cr[i] = static_cast<std::uint8_t>(0xa0 + i);
    sr[i] = static_cast<std::uint8_t>(0x10 + i);
  }
  for (Cipher c : kAllCiphers) {
    CAPTURE(to_string(c));
    auto client = tls12_traffic_keys(c, true, master, cr, sr);
    auto server = tls12_traffic_keys(c, false, master, cr, sr);
    REQUIRE(client.ok());
    REQUIRE(server.ok());
    CHECK(client->version == TlsVersion::tls12);
    CHECK(key_of(client->tx) == key_of(server->rx));
    CHECK(iv_of(client->tx) == iv_of(server->rx));
    CHECK(key_of(client->rx) == key_of(server->tx));
    CHECK(key_of(client->tx) != key_of(client->rx));
    CHECK(client->tx.key_len == key_length(c));
    CHECK(client->tx.iv_len == (c == Cipher::chacha20_poly1305 ? 12u : 4u));
    CHECK(client->tx.seq == 1);
    CHECK(server->rx.seq == 1);
    CHECK(client->tx.secret_len == 0);
    // Swapping the randoms changes everything (they are really in the seed, in order).
    auto swapped = tls12_traffic_keys(c, true, master, sr, cr);
    REQUIRE(swapped.ok());
    CHECK(key_of(swapped->tx) != key_of(client->tx));
  }
  CHECK_FALSE(tls12_traffic_keys(Cipher::aes_128_gcm, true, std::span(master).first(47), cr, sr).ok());
}

// RFC 5246 §5 P_hash, written out with HMAC: an independent computation of the key block.
static std::vector<std::uint8_t> p_hash(const EVP_MD* md, const std::vector<std::uint8_t>& secret,
                                        const std::vector<std::uint8_t>& seed, std::size_t n) {
  std::vector<std::uint8_t> out, a = seed;
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  while (out.size() < n) {
    HMAC(md, secret.data(), static_cast<int>(secret.size()), a.data(), a.size(), buf, &len);
    a.assign(buf, buf + len);  // A(i) = HMAC(secret, A(i-1))
    std::vector<std::uint8_t> in = a;
    in.insert(in.end(), seed.begin(), seed.end());
    HMAC(md, secret.data(), static_cast<int>(secret.size()), in.data(), in.size(), buf, &len);
    out.insert(out.end(), buf, buf + len);
  }
  out.resize(n);
  return out;
}

TEST_CASE("TLS 1.2 key block equals PRF(master, \"key expansion\", server_random || client_random)") {
  std::vector<std::uint8_t> master(48), cr(32), sr(32);
  for (std::size_t i = 0; i < master.size(); ++i) master[i] = static_cast<std::uint8_t>(3 * i + 1);
  for (std::size_t i = 0; i < 32; ++i) {
    cr[i] = static_cast<std::uint8_t>(0x55 ^ i);
    sr[i] = static_cast<std::uint8_t>(0xc3 + 7 * i);
  }
  std::string label = "key expansion";
  std::vector<std::uint8_t> seed(label.begin(), label.end());
  seed.insert(seed.end(), sr.begin(), sr.end());
  seed.insert(seed.end(), cr.begin(), cr.end());
  for (Cipher c : kAllCiphers) {
    CAPTURE(to_string(c));
    const EVP_MD* md = c == Cipher::aes_256_gcm ? EVP_sha384() : EVP_sha256();
    std::size_t kl = key_length(c), ivl = c == Cipher::chacha20_poly1305 ? 12 : 4;
    auto block = p_hash(md, master, seed, 2 * (kl + ivl));
    auto k = tls12_traffic_keys(c, true, master, cr, sr);
    REQUIRE(k.ok());
    auto part = [&block](std::size_t off, std::size_t n) {
      return std::vector<std::uint8_t>(block.begin() + static_cast<long>(off),
                                       block.begin() + static_cast<long>(off + n));
    };
    CHECK(key_of(k->tx) == part(0, kl));                  // client_write_key
    CHECK(key_of(k->rx) == part(kl, kl));                 // server_write_key
    CHECK(iv_of(k->tx) == part(2 * kl, ivl));             // client_write_IV
    CHECK(iv_of(k->rx) == part(2 * kl + ivl, ivl));       // server_write_IV
  }
}
