// Feeds the kernel key hand-over (ktls/record/crypto_info.h, handshake/key_schedule.h)
// arbitrary negotiated parameters: a TLS version (any 16-bit value), a cipher, and then one of
// (0) raw DirectionKeys with any key/IV lengths and record number, (1) a TLS 1.3 traffic
// secret of any length and a KeyUpdate after it, (2) a TLS 1.2 master secret and randoms of
// any lengths, for both roles, (3) bytes the kernel might return from getsockopt. Oracles:
// build() succeeds exactly for a version it knows with the lengths the cipher needs, and then
// lays key, salt, IV and rec_seq out by the kernel's nonce model with the struct's exact size;
// what the key schedule derives always builds; client and server derive mirrored TLS 1.2 keys;
// from_kernel() accepts exactly a known cipher at its exact size, and gives the bytes back.
// fuzz-sources: ktls/record/crypto_info.cc handshake/key_schedule.cc handshake/traffic_keys.cc handshake/tls_params.cc base/result.cc
// fuzz-libs: -lfmt -lcrypto
// fuzz-flags: -max_len=512
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>

#include "fuzz/fuzz_input.h"
#include "handshake/key_schedule.h"
#include "ktls/record/crypto_info.h"

using namespace wasi_ktls;

namespace {

bool same(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
  return std::ranges::equal(a, b);
}

std::uint64_t be64(std::span<const std::uint8_t> b) {
  std::uint64_t v = 0;
  for (std::uint8_t x : b) v = v << 8 | x;
  return v;
}

// build() with its verdict and layout checked; true if it succeeded.
bool check_build(TlsVersion v, Cipher c, const DirectionKeys& k) {
  Result<KernelCryptoInfo> info = KernelCryptoInfo::build(v, c, k);
  const bool known = v == TlsVersion::tls12 || v == TlsVersion::tls13;
  const bool ok = known && k.key_len == key_length(c) && k.iv_len == iv_length(v, c);
  FUZZ_CHECK(info.ok() == ok, "build: wrong verdict");
  if (!ok) return false;

  const KernelCryptoInfo& i = *info;
  FUZZ_CHECK(i.size() == kernel_crypto_info_size(c) && i.bytes().size() == i.size(), "build: size");
  FUZZ_CHECK(i.version() == static_cast<std::uint16_t>(v), "build: version");
  FUZZ_CHECK(i.cipher_type() == kernel_cipher_type(c), "build: cipher_type");
  FUZZ_CHECK(same(i.key(), std::span(k.key).first(k.key_len)), "build: key");
  FUZZ_CHECK(i.rec_seq() == k.seq && be64(i.rec_seq_bytes()) == k.seq, "build: rec_seq");
  if (c == Cipher::chacha20_poly1305) {
    FUZZ_CHECK(i.salt().empty() && same(i.iv(), std::span(k.iv).first(12)), "build: ChaCha20 IV");
  } else if (v == TlsVersion::tls13) {  // salt || iv = the 12-byte IV
    FUZZ_CHECK(same(i.salt(), std::span(k.iv).first(4)) && same(i.iv(), std::span(k.iv).subspan(4, 8)),
               "build: TLS 1.3 AES-GCM salt and IV");
  } else {  // the implicit IV, then the explicit nonce = the record number
    FUZZ_CHECK(same(i.salt(), std::span(k.iv).first(4)) && be64(i.iv()) == k.seq,
               "build: TLS 1.2 AES-GCM salt and explicit nonce");
  }

  // What the kernel gives back from getsockopt is adopted as it is.
  Result<KernelCryptoInfo> back = KernelCryptoInfo::from_kernel(i.bytes());
  FUZZ_CHECK(back.ok() && same(back->bytes(), i.bytes()), "from_kernel(build()) differs");
  // A move leaves nothing behind.
  KernelCryptoInfo moved = std::move(*info);
  FUZZ_CHECK(info->size() == 0 && moved.size() == kernel_crypto_info_size(c), "move");
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const std::uint8_t v = in.u8();
  const TlsVersion version = v == 0   ? TlsVersion::tls12
                             : v == 1 ? TlsVersion::tls13
                                      : static_cast<TlsVersion>(in.u16());
  const Cipher cipher = kAllCiphers[in.u8() % kAllCiphers.size()];

  switch (in.u8() % 4) {
    case 0: {
      DirectionKeys k;
      const auto key = in.bytes(k.key.size());
      std::copy(key.begin(), key.end(), k.key.begin());
      const auto iv = in.bytes(k.iv.size());
      std::copy(iv.begin(), iv.end(), k.iv.begin());
      k.key_len = in.u8();
      k.iv_len = in.u8();
      k.seq = in.u64();
      (void)check_build(version, cipher, k);
      break;
    }
    case 1: {
      const std::uint64_t seq = in.u64();
      const auto secret = in.bytes(in.u8());
      Result<DirectionKeys> k = tls13_direction_keys(cipher, secret, seq);
      FUZZ_CHECK(k.ok() == (secret.size() == suite_hash_length(cipher)), "tls13 keys: wrong verdict");
      if (!k) break;
      FUZZ_CHECK(check_build(TlsVersion::tls13, cipher, *k), "tls13 keys do not build");
      Result<DirectionKeys> next = tls13_next_direction_keys(cipher, *k);
      FUZZ_CHECK(next.ok() && next->seq == 0, "KeyUpdate failed");
      FUZZ_CHECK(!same(std::span(next->secret).first(next->secret_len), secret), "KeyUpdate kept the secret");
      FUZZ_CHECK(check_build(TlsVersion::tls13, cipher, *next), "keys after KeyUpdate do not build");
      break;
    }
    case 2: {
      const auto master = in.bytes(in.u8());
      const auto client_random = in.bytes(in.u8());
      const auto server_random = in.bytes(in.u8());
      Result<TrafficKeys> client = tls12_traffic_keys(cipher, true, master, client_random, server_random);
      const bool ok = master.size() == 48 && client_random.size() == 32 && server_random.size() == 32;
      FUZZ_CHECK(client.ok() == ok, "tls12 keys: wrong verdict");
      if (!ok) break;
      Result<TrafficKeys> server = tls12_traffic_keys(cipher, false, master, client_random, server_random);
      FUZZ_CHECK(server.ok(), "tls12 keys: one role fails");
      for (auto [a, b] : {std::pair{&client->tx, &server->rx}, std::pair{&client->rx, &server->tx}})
        FUZZ_CHECK(same(a->key, b->key) && same(a->iv, b->iv) && a->seq == b->seq,
                   "tls12 keys: the roles do not mirror");
      FUZZ_CHECK(check_build(TlsVersion::tls12, cipher, client->tx) &&
                     check_build(TlsVersion::tls12, cipher, client->rx),
                 "tls12 keys do not build");
      break;
    }
    case 3: {
      const auto bytes = in.rest();
      Result<KernelCryptoInfo> i = KernelCryptoInfo::from_kernel(bytes);
      std::uint16_t type = 0;
      if (bytes.size() >= 4) std::memcpy(&type, bytes.data() + 2, 2);
      bool ok = false;
      for (Cipher c : kAllCiphers)
        ok = ok || (type == kernel_cipher_type(c) && bytes.size() == kernel_crypto_info_size(c));
      FUZZ_CHECK(i.ok() == ok, "from_kernel: wrong verdict");
      if (ok) FUZZ_CHECK(same(i->bytes(), bytes), "from_kernel: bytes differ");
      break;
    }
  }
  return 0;
}
