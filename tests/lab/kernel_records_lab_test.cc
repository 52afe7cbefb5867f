// The kernel record path of the connection core on a real kernel (run in tools/kernel-lab as
// root): the same synthetic keys adopted mirrored by both ends of a loopback TCP pair
// (Connection::with_keys, which installs them), so the kernel encrypts on one end and
// decrypts on the other. Sequence numbers are asserted from getsockopt(TLS_TX/TLS_RX), kernel
// use from /proc/net/tls_stat, and the nonce model against OpenSSL decrypting raw wire records.
// A peer's control records and faults are injected with raw sendmsg on its kTLS socket.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <chrono>
#include <thread>
#include <vector>

#include "base/errno_name.h"
#include "base/unique_fd.h"
#include "handshake/key_schedule.h"
#include "handshake/tls_codes.h"
#include "ktls/conn/connection.h"
#include "ktls/io/loopback_pair.h"
#include "ktls/probe/probe.h"
#include "ktls/probe/tls_stat.h"
#include "ktls/record/crypto_info.h"
#include "ktls/record/install.h"
#include "ktls/record/record_limit.h"
#include "ktls/record/tls_uapi.h"
#include "tests/support/raw_records.h"

using namespace wasi_ktls;
using Bytes = std::vector<std::uint8_t>;

namespace {

constexpr int kTimeoutSeconds = 60;  // per blocking call; UML kTLS moves tens of MB/s

struct Combo {
  TlsVersion version;
  Cipher cipher;
};

std::vector<Combo> all_combos() {
  std::vector<Combo> out;
  for (TlsVersion v : kAllVersions)
    for (Cipher c : kAllCiphers) out.push_back({v, c});
  return out;
}

Bytes random_bytes(std::size_t n) {
  Bytes b(n);
  if (n > 0) REQUIRE(RAND_bytes(b.data(), static_cast<int>(n)) == 1);
  return b;
}

// TLS 1.3: key and IV derived from a random traffic secret (so a KeyUpdate can follow);
// TLS 1.2: random key and implicit IV.
DirectionKeys random_keys(TlsVersion v, Cipher c, std::uint64_t seq) {
  if (v == TlsVersion::tls13) {
    const Bytes secret = random_bytes(suite_hash_length(c));
    auto k = tls13_direction_keys(c, secret, seq);
    REQUIRE_MESSAGE(k.ok(), (k.ok() ? "" : k.error().message));
    return *k;
  }
  DirectionKeys k;
  k.key_len = key_length(c);
  k.iv_len = iv_length(v, c);
  REQUIRE(RAND_bytes(k.key.data(), static_cast<int>(k.key_len)) == 1);
  REQUIRE(RAND_bytes(k.iv.data(), static_cast<int>(k.iv_len)) == 1);
  k.seq = seq;
  return k;
}

// End A's tx is end B's rx and vice versa.
struct Mirrored {
  TrafficKeys a, b;
};
Mirrored mirrored(Combo c, std::uint64_t a_tx_seq, std::uint64_t b_tx_seq) {
  Mirrored m;
  m.a.version = m.b.version = c.version;
  m.a.cipher = m.b.cipher = c.cipher;
  m.a.tx = random_keys(c.version, c.cipher, a_tx_seq);
  m.a.rx = random_keys(c.version, c.cipher, b_tx_seq);
  m.b.tx = m.a.rx;
  m.b.rx = m.a.tx;
  return m;
}

LoopbackPair make_pair() {
  auto p = make_loopback_pair();
  REQUIRE_MESSAGE(p.ok(), (p.ok() ? "" : p.error().message));
  return std::move(*p);
}

ConnectionOptions options(std::uint64_t tx_record_limit = 0) {
  ConnectionOptions o;
  o.backend = Backend::ktls;
  o.io_timeout = std::chrono::seconds(kTimeoutSeconds);
  o.tx_record_limit = tx_record_limit;
  return o;
}

std::uint64_t stat(const char* name) {
  auto s = read_tls_stat();
  REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
  auto v = s->get(name);
  REQUIRE_MESSAGE(v.has_value(), name);
  return *v;
}

std::uint64_t kernel_seq(int fd, Direction d) {
  auto info = read_kernel_crypto_info(fd, d);
  REQUIRE_MESSAGE(info.ok(), (info.ok() ? "" : info.error().message));
  return info->rec_seq();
}

// Both ends of a loopback pair as our connections over the mirrored keys: Connection::with_keys
// installs them (the core's install steps) and runs the kernel record path.
struct Ends {
  Connection a, b;
};
// A is the client unless said otherwise; B takes the other role.
Ends adopt(const Mirrored& keys, ConnectionOptions a_opt = options(),
           ConnectionOptions b_opt = options(), Role a_role = Role::client) {
  LoopbackPair p = make_pair();
  const Role b_role = a_role == Role::client ? Role::server : Role::client;
  auto a = Connection::with_keys(std::move(p.client), keys.a, a_role, a_opt);
  REQUIRE_MESSAGE(a.ok(), (a.ok() ? "" : a.error().message));
  auto b = Connection::with_keys(std::move(p.server), keys.b, b_role, b_opt);
  REQUIRE_MESSAGE(b.ok(), (b.ok() ? "" : b.error().message));
  return Ends{std::move(*a), std::move(*b)};
}

// Receives exactly n bytes of data; never throws, so a sender thread can always be joined.
Result<Bytes> try_recv_exactly(Connection& c, std::size_t n) {
  Bytes out(n);
  auto got = c.read_full(out);
  if (!got.ok()) return got.error();
  if (*got != n) return make_error("end of stream after {} of {} bytes", *got, n);
  return out;
}

Bytes recv_exactly(Connection& c, std::size_t n) {
  auto r = try_recv_exactly(c, n);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  return std::move(*r);
}

void expect_end_of_stream(Connection& c) {
  std::uint8_t b[64];
  auto r = c.read(b);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  CHECK(*r == 0);
}

Error recv_error(Connection& c) {
  std::uint8_t b[256];
  for (;;) {
    auto r = c.read(b);
    if (!r.ok()) return r.error();
    REQUIRE_MESSAGE(*r > 0, "expected an error, got end of stream");
  }
}

// Sends on a thread while the caller receives, so large transfers can't deadlock on buffers.
void transfer(Connection& from, Connection& to, const Bytes& data) {
  Status sent;
  std::thread t([&] { sent = from.write(data); });
  Result<Bytes> got = try_recv_exactly(to, data.size());
  t.join();  // bounded: the I/O timeout
  REQUIRE_MESSAGE(sent.ok(), (sent.ok() ? "" : sent.error().message));
  REQUIRE_MESSAGE(got.ok(), (got.ok() ? "" : got.error().message));
  CHECK(*got == data);
}

Bytes handshake_msg(std::uint8_t type, std::size_t len) {
  Bytes m = {type, static_cast<std::uint8_t>(len >> 16), static_cast<std::uint8_t>(len >> 8),
             static_cast<std::uint8_t>(len)};
  Bytes body = random_bytes(len);
  m.insert(m.end(), body.begin(), body.end());
  return m;
}

// ---- OpenSSL as an independent judge of the nonce model -------------------------------------

void be64(std::uint8_t* out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) out[i] = static_cast<std::uint8_t>(v);
}

const EVP_CIPHER* evp_cipher(Cipher c) {
  switch (c) {
    case Cipher::aes_128_gcm: return EVP_aes_128_gcm();
    case Cipher::aes_256_gcm: return EVP_aes_256_gcm();
    case Cipher::chacha20_poly1305: return EVP_chacha20_poly1305();
  }
  return nullptr;
}

// Decrypts one wire record (header + body) per RFC 8446 / 5288 / 7905 with `k` at `seq`.
// Returns the plaintext and the (inner) content type, or fails the test.
std::pair<Bytes, std::uint8_t> rfc_decrypt(TlsVersion v, Cipher c, const DirectionKeys& k,
                                           std::uint64_t seq, const Bytes& rec) {
  REQUIRE(rec.size() >= 5 + 16);
  const std::uint8_t* body = rec.data() + 5;
  std::size_t body_len = rec.size() - 5;
  std::uint8_t nonce[12];
  std::uint8_t aad[13];
  std::size_t aad_len;
  const bool explicit_nonce = v == TlsVersion::tls12 && c != Cipher::chacha20_poly1305;
  if (explicit_nonce) {
    std::memcpy(nonce, k.iv.data(), 4);
    std::memcpy(nonce + 4, body, 8);
    body += 8;
    body_len -= 8;
  } else {
    std::uint8_t s[8];
    be64(s, seq);
    std::memcpy(nonce, k.iv.data(), 12);
    for (int i = 0; i < 8; ++i) nonce[4 + i] ^= s[i];
  }
  const std::size_t ct_len = body_len - 16;
  if (v == TlsVersion::tls13) {
    std::memcpy(aad, rec.data(), 5);
    aad_len = 5;
  } else {
    be64(aad, seq);
    aad[8] = rec[0];
    aad[9] = 3;
    aad[10] = 3;
    aad[11] = static_cast<std::uint8_t>(ct_len >> 8);
    aad[12] = static_cast<std::uint8_t>(ct_len);
    aad_len = 13;
  }
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  REQUIRE(ctx != nullptr);
  Bytes pt(ct_len + 16);
  int len = 0, fin = 0;
  bool ok = EVP_DecryptInit_ex(ctx, evp_cipher(c), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, nullptr) == 1 &&
            EVP_DecryptInit_ex(ctx, nullptr, nullptr, k.key.data(), nonce) == 1 &&
            EVP_DecryptUpdate(ctx, nullptr, &len, aad, static_cast<int>(aad_len)) == 1 &&
            EVP_DecryptUpdate(ctx, pt.data(), &len, body, static_cast<int>(ct_len)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16,
                                const_cast<std::uint8_t*>(body + ct_len)) == 1 &&
            EVP_DecryptFinal_ex(ctx, pt.data() + len, &fin) == 1;
  EVP_CIPHER_CTX_free(ctx);
  REQUIRE_MESSAGE(ok, "OpenSSL could not authenticate the kernel's record");
  pt.resize(static_cast<std::size_t>(len + fin));
  std::uint8_t type = rec[0];
  if (v == TlsVersion::tls13) {
    while (!pt.empty() && pt.back() == 0) pt.pop_back();  // padding
    REQUIRE(!pt.empty());
    type = pt.back();
    pt.pop_back();
  }
  return {pt, type};
}

// Reads one whole TLS record from a plain socket.
Bytes read_raw_record(int fd) {
  Bytes rec(5);
  auto read_n = [&](std::uint8_t* p, std::size_t n) {
    while (n > 0) {
      ssize_t r = ::recv(fd, p, n, 0);
      REQUIRE_MESSAGE(r > 0, "raw read: " << (r < 0 ? errno_name(errno) : "EOF"));
      p += r;
      n -= static_cast<std::size_t>(r);
    }
  };
  read_n(rec.data(), 5);
  const std::size_t len = (std::size_t{rec[3]} << 8) | rec[4];
  rec.resize(5 + len);
  read_n(rec.data() + 5, len);
  return rec;
}

}  // namespace

TEST_CASE("all 6 combos: data both ways, sequence numbers, tls_stat, close_notify both ways") {
  const std::vector<std::size_t> sizes = {0, 1, 16383, 16384, 16385, std::size_t{8} << 20};
  std::uint64_t expected_records = 0;
  for (std::size_t s : sizes) expected_records += records_for_bytes(s);
  REQUIRE(expected_records == 517);
  (void)kernel_probe();  // measured once, first: its own sockets count in tls_stat too

  for (const Combo& c : all_combos()) {
    CAPTURE(to_string(c.version));
    CAPTURE(to_string(c.cipher));
    // A starts where a TLS 1.3 server does after 2 tickets; B at a number with three bytes
    // set (still below the AES-GCM record limit).
    const std::uint64_t a_seq = c.version == TlsVersion::tls12 ? 1 : 2;
    const std::uint64_t b_seq = 0x0123'4567;
    Mirrored keys = mirrored(c, a_seq, b_seq);

    const std::uint64_t tx0 = stat("TlsCurrTxSw"), rx0 = stat("TlsCurrRxSw");
    const std::uint64_t txt0 = stat("TlsTxSw"), rxt0 = stat("TlsRxSw");
    {
      Ends e = adopt(keys);
      const int a = e.a.fd(), b = e.b.fd();
      CHECK(stat("TlsCurrTxSw") - tx0 == 2);
      CHECK(stat("TlsCurrRxSw") - rx0 == 2);
      CHECK(stat("TlsTxSw") - txt0 == 2);
      CHECK(stat("TlsRxSw") - rxt0 == 2);
      CHECK(kernel_seq(a, Direction::tx) == a_seq);
      CHECK(kernel_seq(b, Direction::rx) == a_seq);

      for (std::size_t s : sizes) {
        CAPTURE(s);
        const Bytes data = random_bytes(s);
        transfer(e.a, e.b, data);
        transfer(e.b, e.a, data);
      }
      // One write of n bytes, unhurried by a full socket, is ceil(n / 16384) records.
      CHECK(kernel_seq(a, Direction::tx) == a_seq + expected_records);
      CHECK(kernel_seq(b, Direction::rx) == a_seq + expected_records);
      CHECK(kernel_seq(b, Direction::tx) == b_seq + expected_records);
      CHECK(kernel_seq(a, Direction::rx) == b_seq + expected_records);

      // close_notify A -> B: clean end; B answers; A sees a clean end too.
      REQUIRE(e.a.close().ok());
      expect_end_of_stream(e.b);
      expect_end_of_stream(e.b);  // stays ended
      REQUIRE(e.b.close().ok());
      expect_end_of_stream(e.a);
      CHECK(kernel_seq(a, Direction::tx) == a_seq + expected_records + 1);
      CHECK(kernel_seq(b, Direction::tx) == b_seq + expected_records + 1);
      Status after = e.a.write(Bytes{1});
      REQUIRE_FALSE(after.ok());  // nothing after close_notify
      CHECK(after.error().kind == ErrorKind::closed);
    }
    CHECK(stat("TlsCurrTxSw") == tx0);
    CHECK(stat("TlsCurrRxSw") == rx0);
  }
}

TEST_CASE("nonce model: OpenSSL decrypts what the kernel sent, per RFC, for all 6 combos") {
  for (const Combo& c : all_combos()) {
    CAPTURE(to_string(c.version));
    CAPTURE(to_string(c.cipher));
    const std::uint64_t seq = 0x0102'0304'0506'0708;
    Mirrored keys = mirrored(c, seq, 0);
    LoopbackPair p = make_pair();
    // The server end stays plain TCP and reads raw; seq is far past the AES-GCM default.
    auto a = Connection::with_keys(std::move(p.client), keys.a, Role::client,
                                   options(~std::uint64_t{0}));
    REQUIRE_MESSAGE(a.ok(), (a.ok() ? "" : a.error().message));
    const Bytes data = random_bytes(20000);
    REQUIRE(a->write(data).ok());
    const int raw = p.server.get();
    auto [pt1, type1] = rfc_decrypt(c.version, c.cipher, keys.a.tx, seq, read_raw_record(raw));
    auto [pt2, type2] = rfc_decrypt(c.version, c.cipher, keys.a.tx, seq + 1, read_raw_record(raw));
    CHECK(type1 == content_type::application_data);
    CHECK(type2 == content_type::application_data);
    CHECK(pt1.size() == 16384);
    Bytes joined = pt1;
    joined.insert(joined.end(), pt2.begin(), pt2.end());
    CHECK(joined == data);

    REQUIRE(a->close().ok());
    auto [alert, type3] = rfc_decrypt(c.version, c.cipher, keys.a.tx, seq + 2, read_raw_record(raw));
    CHECK(type3 == content_type::alert);
    CHECK(alert == Bytes{1, 0});
  }
}

TEST_CASE("TLS 1.2 AES-GCM: what the kernel puts on the wire as the explicit nonce") {
  // Build the struct by hand with iv != rec_seq to see which one the kernel sends.
  LoopbackPair p = make_pair();
  DirectionKeys k = random_keys(TlsVersion::tls12, Cipher::aes_128_gcm, 7);
  tls12_crypto_info_aes_gcm_128 info{};
  info.info.version = TLS_1_2_VERSION;
  info.info.cipher_type = TLS_CIPHER_AES_GCM_128;
  const std::uint8_t iv[8] = {0xAA, 0xBB, 0xCC, 0xDD, 0, 0, 0, 0x10};
  std::memcpy(info.iv, iv, 8);
  std::memcpy(info.key, k.key.data(), 16);
  std::memcpy(info.salt, k.iv.data(), 4);
  be64(info.rec_seq, 7);
  REQUIRE(attach_tls_ulp(p.client.get()) == 0);
  REQUIRE(::setsockopt(p.client.get(), SOL_TLS, TLS_TX, &info, sizeof info) == 0);
  const Bytes data = random_bytes(100);
  REQUIRE(::send(p.client.get(), data.data(), data.size(), MSG_NOSIGNAL) == 100);
  REQUIRE(::send(p.client.get(), data.data(), data.size(), MSG_NOSIGNAL) == 100);
  const Bytes r1 = read_raw_record(p.server.get());
  const Bytes r2 = read_raw_record(p.server.get());
  const Bytes e1(r1.begin() + 5, r1.begin() + 13), e2(r2.begin() + 5, r2.begin() + 13);
  const Bytes iv_bytes(iv, iv + 8);
  Bytes iv_plus1 = iv_bytes;
  iv_plus1[7] += 1;
  const std::string which = e1 == iv_bytes                         ? "crypto_info.iv"
                            : e1 == Bytes{0, 0, 0, 0, 0, 0, 0, 7} ? "rec_seq"
                                                                  : "something else";
  MESSAGE("6.1 TLS 1.2 AES-GCM TX explicit nonce of the first record = " << which);
  CHECK(e1 == iv_bytes);  // the kernel uses crypto_info.iv, not rec_seq ...
  CHECK(e2 == iv_plus1);  // ... and increments it per record
  auto info_now = read_kernel_crypto_info(p.client.get(), Direction::tx);
  REQUIRE(info_now.ok());
  CHECK(info_now->rec_seq() == 9);
  Bytes iv_plus2 = iv_bytes;
  iv_plus2[7] += 2;
  CHECK(Bytes(info_now->iv().begin(), info_now->iv().end()) == iv_plus2);
  // And OpenSSL decrypts it with salt || explicit and the rec_seq in the AAD.
  auto [pt, type] = rfc_decrypt(TlsVersion::tls12, Cipher::aes_128_gcm, k, 7, r1);
  CHECK(pt == data);
  OPENSSL_cleanse(&info, sizeof info);
}

TEST_CASE("truncation: FIN without close_notify is not a clean end; writing still works") {
  Mirrored keys = mirrored({TlsVersion::tls13, Cipher::aes_128_gcm}, 0, 0);
  Ends e = adopt(keys);
  transfer(e.a, e.b, random_bytes(1000));
  REQUIRE(::shutdown(e.a.fd(), SHUT_WR) == 0);
  const Error err = recv_error(e.b);
  CHECK(err.message == "peer closed the connection without close_notify (truncation)");
  CHECK(err.kind == ErrorKind::truncated);
  CHECK(recv_error(e.b).message == err.message);  // terminal
  transfer(e.b, e.a, random_bytes(1000));         // only B's receive side ended
}

TEST_CASE("NewSessionTicket records interleaved with data are consumed transparently") {
  Mirrored keys = mirrored({TlsVersion::tls13, Cipher::aes_256_gcm}, 2, 0);
  // A plays the server (it sends tickets), B the client.
  Ends e = adopt(keys, options(), options(), Role::server);
  const int a = e.a.fd();
  const Bytes d1 = random_bytes(1000), d2 = random_bytes(3000), d3 = random_bytes(20000);
  REQUIRE(e.a.write(d1).ok());
  // Two tickets in one record, then one ticket split over two records.
  Bytes two = handshake_msg(4, 217);
  const Bytes second = handshake_msg(4, 233);
  two.insert(two.end(), second.begin(), second.end());
  test::send_record(a, content_type::handshake, two);
  REQUIRE(e.a.write(d2).ok());
  const Bytes split = handshake_msg(4, 500);
  test::send_record(a, content_type::handshake, std::span(split).subspan(0, 100));
  test::send_record(a, content_type::handshake, std::span(split).subspan(100));
  REQUIRE(e.a.write(d3).ok());
  REQUIRE(e.a.close().ok());

  Bytes want = d1;
  want.insert(want.end(), d2.begin(), d2.end());
  want.insert(want.end(), d3.begin(), d3.end());
  CHECK(recv_exactly(e.b, want.size()) == want);
  expect_end_of_stream(e.b);
  // 1 + 1 + 1 + 2 + 2 data/control records + close_notify, after the 2 "tickets" before.
  CHECK(kernel_seq(e.b.fd(), Direction::rx) == 2 + 8);
  CHECK(kernel_seq(a, Direction::tx) == 2 + 8);
}

TEST_CASE("a server refuses a NewSessionTicket or HelloRequest from its client") {
  for (const Combo c : {Combo{TlsVersion::tls13, Cipher::aes_128_gcm},
                        Combo{TlsVersion::tls12, Cipher::aes_128_gcm}}) {
    CAPTURE(to_string(c.version));
    Mirrored keys = mirrored(c, 1, 1);
    LoopbackPair p = make_pair();
    // B is the server this time: A, its client, sends what only servers send.
    auto b = Connection::with_keys(std::move(p.server), keys.b, Role::server, options());
    REQUIRE(b.ok());
    auto a = Connection::with_keys(std::move(p.client), keys.a, Role::client, options());
    REQUIRE(a.ok());
    const Bytes msg = c.version == TlsVersion::tls13 ? handshake_msg(4, 200) : Bytes{0, 0, 0, 0};
    test::send_record(a->fd(), content_type::handshake, msg);
    const Error err = recv_error(*b);
    MESSAGE(err.message);
    CHECK(err.kind == ErrorKind::protocol);
    CHECK(err.message.find("we are the server") != std::string::npos);
    CHECK(recv_error(*a).message == "peer sent fatal alert: unexpected_message (10)");
  }
}

TEST_CASE("1000 tiny records: counts come from the kernel, and the TX limit is exact") {
  Mirrored keys = mirrored({TlsVersion::tls13, Cipher::aes_128_gcm}, 0, 0);
  constexpr std::uint64_t kLimit = 1010;
  Ends e = adopt(keys, options(kLimit), options());
  // 1000 one-byte records, read in a few reads that each take many records at once.
  for (int i = 0; i < 1000; ++i) REQUIRE(e.a.write(Bytes{static_cast<std::uint8_t>(i)}).ok());
  Bytes got(1000);
  std::size_t reads = 0, n = 0;
  while (n < got.size()) {
    auto r = e.b.read(std::span(got).subspan(n));
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
    n += *r;
    ++reads;
  }
  MESSAGE("1000 records arrived in " << reads << " reads");
  CHECK(reads < 1000);  // so a count per read would have been wrong
  for (int i = 0; i < 1000; ++i) CHECK(got[static_cast<std::size_t>(i)] == static_cast<std::uint8_t>(i));
  CHECK(kernel_seq(e.b.fd(), Direction::rx) == 1000);
  CHECK(kernel_seq(e.a.fd(), Direction::tx) == 1000);
  // The limit keeps one record for close_notify: 1009 data records, then the limit.
  int sent = 1000;
  Status s;
  while ((s = e.a.write(Bytes{7})).ok()) ++sent;
  CHECK(static_cast<std::uint64_t>(sent) == kLimit - 1);
  CHECK(s.error().kind == ErrorKind::record_limit);
  CHECK(kernel_seq(e.a.fd(), Direction::tx) == kLimit);
}

TEST_CASE("peer KeyUpdate: carried out where the kernel can rekey, else a clear fatal error") {
  Mirrored keys = mirrored({TlsVersion::tls13, Cipher::chacha20_poly1305}, 0, 0);
  Ends e = adopt(keys);
  transfer(e.a, e.b, random_bytes(500));
  const Bytes ku = {handshake_type::key_update, 0, 0, 1, 1};  // update_requested
  if (!kernel_probe().rekey.ok) {
    MESSAGE("this kernel cannot rekey kTLS: " << kernel_probe().rekey.reason);
    test::send_record(e.a.fd(), content_type::handshake, ku);
    const Error err = recv_error(e.b);
    CHECK(err.message.find("peer sent TLS 1.3 KeyUpdate; this kernel (") == 0);
    CHECK(err.message.find("cannot rekey kTLS (needs Linux >= 6.14)") != std::string::npos);
    CHECK(recv_error(e.a).message == "peer sent fatal alert: internal_error (80)");
    return;
  }
  // A acts as the peer by hand: its KeyUpdate record, then its next TX key (RFC 8446 7.2).
  DirectionKeys next = *tls13_next_direction_keys(Cipher::chacha20_poly1305, keys.a.tx);
  test::send_record(e.a.fd(), content_type::handshake, ku);
  auto info = KernelCryptoInfo::build(TlsVersion::tls13, Cipher::chacha20_poly1305, next);
  REQUIRE(info.ok());
  REQUIRE(set_kernel_key(e.a.fd(), Direction::tx, *info) == 0);
  // B rekeys RX, answers with its own KeyUpdate and rekeys TX; A's core rekeys its RX.
  transfer(e.a, e.b, random_bytes(70000));
  transfer(e.b, e.a, random_bytes(70000));
  CHECK(kernel_seq(e.b.fd(), Direction::rx) == 5);  // records under the new key
  CHECK(kernel_seq(e.b.fd(), Direction::tx) == 5);
}

TEST_CASE("KeyUpdate where the probe claims rekey on a kernel that refuses it: EBUSY, named") {
  if (kernel_probe().rekey.ok) return;  // the case above carries it out
  // The rekey path runs against the real kernel, which answers the second TLS_RX with EBUSY.
  Probe claims = kernel_probe();
  claims.rekey.ok = true;
  ConnectionOptions o = options();
  o.probe = &claims;
  Mirrored keys = mirrored({TlsVersion::tls13, Cipher::aes_128_gcm}, 0, 0);
  Ends e = adopt(keys, options(), o);
  const Bytes ku = {handshake_type::key_update, 0, 0, 1, 0};
  test::send_record(e.a.fd(), content_type::handshake, ku);
  const Error err = recv_error(e.b);
  MESSAGE(err.message);
  CHECK(err.message.find("rekey of RX") != std::string::npos);
  CHECK(err.message.find("setsockopt(SOL_TLS, TLS_RX)") != std::string::npos);
  CHECK(err.message.find("EBUSY") != std::string::npos);
}

TEST_CASE("mismatched key: terminal bad_record_mac, TlsDecryptError counts it") {
  Mirrored keys = mirrored({TlsVersion::tls12, Cipher::aes_256_gcm}, 1, 1);
  keys.b.rx.key[0] ^= 0x01;
  Ends e = adopt(keys);
  const std::uint64_t dec0 = stat("TlsDecryptError");
  REQUIRE(e.a.write(random_bytes(100)).ok());
  const Error err = recv_error(e.b);
  CHECK(err.message.find("bad_record_mac (20)") == 0);
  CHECK(err.kind == ErrorKind::protocol);
  CHECK(stat("TlsDecryptError") - dec0 == 1);
  // Our alert goes out, though the kernel left EBADMSG pending on the socket for sends too.
  CHECK(recv_error(e.a).message == "peer sent fatal alert: bad_record_mac (20)");
  CHECK(recv_error(e.b).message == err.message);  // never retried
  // What 6.1 itself does on a second read after EBADMSG (recorded, not relied upon).
  std::uint8_t buf[64];
  const ssize_t n = ::recv(e.b.fd(), buf, sizeof buf, MSG_DONTWAIT);
  const int en = errno;
  MESSAGE("6.1: second recv after EBADMSG returned " << n << " " << (n < 0 ? errno_name(en) : ""));
  CHECK(n < 0);
  CHECK_FALSE(e.b.write(Bytes{1}).ok());  // the connection is over both ways
}

TEST_CASE("a peer's fatal alert is named and ends both directions") {
  Mirrored keys = mirrored({TlsVersion::tls12, Cipher::chacha20_poly1305}, 1, 1);
  Ends e = adopt(keys);
  transfer(e.a, e.b, random_bytes(10));
  const std::uint8_t alert[2] = {alert_level::fatal, 40};
  test::send_record(e.a.fd(), content_type::alert, alert);
  const Error err = recv_error(e.b);
  CHECK(err.message == "peer sent fatal alert: handshake_failure (40)");
  CHECK(err.kind == ErrorKind::peer_alert);
  CHECK_FALSE(e.b.write(Bytes{1}).ok());
}

TEST_CASE("nothing follows our own fatal alert, even behind a write in flight") {
  Mirrored keys = mirrored({TlsVersion::tls13, Cipher::aes_128_gcm}, 0, 0);
  Ends e = adopt(keys);
  // A writes more than the socket buffers hold while B does not read yet.
  const Bytes big = random_bytes(std::size_t{32} << 20);
  Status written;
  std::thread writer([&] { written = e.a.write(big); });
  // Only once A's write is in flight and stuck on the full socket (its records stopped
  // moving) does B send a record of a content type no RFC defines: A's reader then owes
  // unexpected_message while its writer holds the write side.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::uint64_t seen = 0;
  for (int still = 0; still < 3 && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const std::uint64_t now = kernel_seq(e.a.fd(), Direction::tx);
    still = now == seen && now > 0 ? still + 1 : 0;
    seen = now;
  }
  MESSAGE("A's write is stuck after " << seen << " records of " << big.size() / 16384);
  REQUIRE(seen > 0);
  REQUIRE(seen < big.size() / 16384);
  const std::uint8_t junk[3] = {1, 2, 3};
  test::send_record(e.b.fd(), 99, junk);
  const Error err = recv_error(e.a);
  MESSAGE("A read: " << err.message);
  CHECK(err.kind == ErrorKind::protocol);
  // B drains what A sent: data, then A's alert, and nothing after it.
  Bytes sink(1 << 20);
  std::optional<Error> b_err;
  while (!b_err) {
    auto r = e.b.read(sink);
    if (!r.ok()) b_err = r.error();
    else REQUIRE(*r > 0);
  }
  writer.join();
  MESSAGE("A write: " << (written.ok() ? "ok" : written.error().message));
  CHECK_FALSE(written.ok());
  CHECK(b_err->message == "peer sent fatal alert: unexpected_message (10)");
  // Every record A's kernel sent was read by B's, the alert last.
  CHECK(kernel_seq(e.a.fd(), Direction::tx) == kernel_seq(e.b.fd(), Direction::rx));
  CHECK_FALSE(e.a.write(Bytes{1}).ok());
}

TEST_CASE("AEAD record limit: close_notify before the limit, clear error; receiving goes on") {
  Mirrored keys = mirrored({TlsVersion::tls13, Cipher::aes_128_gcm}, 0, 0);
  Ends e = adopt(keys, options(3), options());
  const Bytes big = random_bytes(3 * 16384);
  // Only 2 records fit; the third is close_notify's.
  Status first = e.a.write(big);
  REQUIRE_FALSE(first.ok());
  CHECK(first.error().kind == ErrorKind::record_limit);
  CHECK(first.error().message.find("AEAD record limit reached") == 0);
  CHECK(first.error().message.find("sent close_notify") != std::string::npos);
  CHECK(kernel_seq(e.a.fd(), Direction::tx) == 3);
  CHECK(recv_exactly(e.b, 2 * 16384) == Bytes(big.begin(), big.begin() + 2 * 16384));
  expect_end_of_stream(e.b);
  CHECK_FALSE(e.a.write(Bytes{1}).ok());
  // Only A's sending side ended: B's data and close_notify still reach it.
  const Bytes reply = random_bytes(100000);
  transfer(e.b, e.a, reply);
  REQUIRE(e.b.close().ok());
  expect_end_of_stream(e.a);
}

TEST_CASE("install refuses a socket that is not established, before touching it") {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  REQUIRE(fd.valid());
  Mirrored keys = mirrored({TlsVersion::tls13, Cipher::aes_128_gcm}, 0, 0);
  auto c = Connection::with_keys(std::move(fd), keys.a, Role::client, options());
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message.find("not ESTABLISHED") != std::string::npos);
  CHECK(c.error().kind == ErrorKind::backend_unavailable);
}

TEST_CASE("install: a ULP already attached fails before any key; the socket stays plain TCP") {
  LoopbackPair p = make_pair();
  REQUIRE(attach_tls_ulp(p.client.get()) == 0);
  Mirrored keys = mirrored({TlsVersion::tls13, Cipher::aes_128_gcm}, 0, 0);
  // A duplicate goes to the connection, which closes it on failure; the socket stays open.
  auto c = Connection::with_keys(UniqueFd(::dup(p.client.get())), keys.a, Role::client,
                                 options());
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().message.find("TCP_ULP") != std::string::npos);
  CHECK(c.error().message.find("EEXIST") != std::string::npos);
  CHECK(c.error().sys_errno == EEXIST);
  // Bytes still pass unchanged in both directions.
  const char msg[] = "plain";
  REQUIRE(::send(p.client.get(), msg, 5, MSG_NOSIGNAL) == 5);
  char got[5];
  REQUIRE(::recv(p.server.get(), got, 5, MSG_WAITALL) == 5);
  CHECK(std::memcmp(got, msg, 5) == 0);
  REQUIRE(::send(p.server.get(), msg, 5, MSG_NOSIGNAL) == 5);
  REQUIRE(::recv(p.client.get(), got, 5, MSG_WAITALL) == 5);
  CHECK(std::memcmp(got, msg, 5) == 0);
}

TEST_CASE("a second key in one direction without rekey support: EBUSY, named with its meaning") {
  if (kernel_probe().rekey.ok) return;
  Mirrored keys = mirrored({TlsVersion::tls13, Cipher::aes_128_gcm}, 0, 0);
  Ends e = adopt(keys);
  auto tx = KernelCryptoInfo::build(keys.a, Direction::tx);
  REQUIRE(tx.ok());
  const long again = set_kernel_key(e.a.fd(), Direction::tx, *tx);
  REQUIRE(again == -EBUSY);
  const Error err = install_error(InstallStep::tls_tx, EBUSY);
  CHECK(err.message.find("setsockopt(SOL_TLS, TLS_TX)") != std::string::npos);
  CHECK(err.message.find("no rekey before Linux 6.14") != std::string::npos);
}
