// Feeds the handshake Session (handshake/session.h) arbitrary peer bytes, in either role,
// through the driver loop every transport uses: advance(), drop what it sends, read exactly
// the read_bytes it asks for from the input, feed, again; after a finished handshake,
// take_keys() and a userspace read of whatever follows. Contexts are real (a throw-away PKI
// from tools/make-test-pki, verification on, mTLS optional, ALPN), so the seeds, flights
// captured from openssl s_client/s_server, reach deep into the handshake; or the peer is a
// real Session whose bytes the input corrupts, so that handshakes finish. Oracles: no crash;
// no hang (every step consumes input or ends; a step that asks for no bytes without being
// done is a finding); bounded memory (a read request is at most one TLS record, header
// included, and -rss_limit_mb holds the rest); after done, advance() stays done.
//
// Input: byte 0: bit 0 = we are the server; bit 1 = the peer is a real Session of the other
// role whose bytes the rest of the input edits (else the rest is the peer's bytes); bit 2 =
// after a finished handshake, take_keys() (else read what the peer sends next); bit 3 = both
// sides TLS 1.2 only; bit 4 = release_idle_buffers() after each of those reads.
// fuzz-sources: handshake/session.cc handshake/policy.cc handshake/key_schedule.cc handshake/openssl_error.cc handshake/openssl_memory.cc handshake/tls_codes.cc handshake/tls_params.cc handshake/traffic_keys.cc base/result.cc tests/support/test_pki.cc
// fuzz-libs: -lfmt -lssl -lcrypto
// fuzz-flags: -max_len=16384
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_input.h"
#include "handshake/session.h"
#include "tests/support/test_pki.h"

using namespace wasi_ktls;

namespace {

// The largest TLS record on the wire: header, 2^14 plaintext and 2048 bytes of expansion
// (RFC 5246 §6.2.3; TLS 1.3's 256 fit within it).
constexpr std::size_t kMaxRecord = 5 + (1u << 14) + 2048;

struct Contexts {
  test::TestPki pki;
  // [0]: TLS 1.2 and 1.3 (what a real peer picks: 1.3); [1]: TLS 1.2 only.
  std::optional<TlsContext> client[2], server[2];
};
Contexts* contexts = nullptr;

TlsContext make(Role role, const test::TestPki& pki, bool tls12_only) {
  Policy p;
  if (tls12_only) p.max_version = TlsVersion::tls12;
  p.ca = PemSource::file(pki.ca);
  p.alpn = {"h2", "http/1.1"};
  if (role == Role::server) {
    p.certificate_chain = PemSource::file(pki.server_cert);
    p.private_key = PemSource::file(pki.server_key);
    p.client_auth = ClientAuth::optional;
  } else {
    p.certificate_chain = PemSource::file(pki.client_cert);
    p.private_key = PemSource::file(pki.client_key);
  }
  Result<TlsContext> ctx = TlsContext::create(role, p);
  if (!ctx) {
    std::fprintf(stderr, "session_fuzzer: %s\n", ctx.error().message.c_str());
    std::exit(2);
  }
  return std::move(*ctx);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Result<test::TestPki> pki = test::make_test_pki();  // run from the repository root
  if (!pki) {
    std::fprintf(stderr, "session_fuzzer: test PKI: %s\n", pki.error().message.c_str());
    std::exit(2);
  }
  contexts = new Contexts{std::move(*pki), {}, {}};
  for (int v : {0, 1}) {
    contexts->client[v] = make(Role::client, contexts->pki, v == 1);
    contexts->server[v] = make(Role::server, contexts->pki, v == 1);
  }
  return 0;
}

namespace {

// Where the peer's bytes come from.
class Peer {
 public:
  virtual ~Peer() = default;
  // Up to n more bytes of the peer's stream; none when it has nothing more to say.
  virtual std::span<const std::uint8_t> next(std::size_t n) = 0;
  // Our bytes, for the peer.
  virtual void receive(std::span<const std::uint8_t>) {}
  // After our handshake: all the peer still sends (data, close_notify, anything).
  virtual std::span<const std::uint8_t> rest() = 0;
};

// The input itself is the peer.
class InputPeer final : public Peer {
 public:
  explicit InputPeer(fuzz::Input& in) : in_(in) {}
  std::span<const std::uint8_t> next(std::size_t n) override { return in_.bytes(n); }
  std::span<const std::uint8_t> rest() override { return in_.rest(); }

 private:
  fuzz::Input& in_;
};

// A real Session of the other role, whose bytes the input edits on their way to us (the rest
// of the input: big-endian u16 stream offset, byte to XOR there): handshakes complete unless
// an edit breaks them, so the paths after one (take_keys, userspace records) run too.
class SessionPeer final : public Peer {
 public:
  SessionPeer(Session peer, fuzz::Input& in) : peer_(std::move(peer)) {
    while (in.remaining() >= 3) {
      const std::uint16_t at = in.u16();
      edits_.emplace_back(at, in.u8());
    }
  }
  std::span<const std::uint8_t> next(std::size_t n) override {
    pump();
    const std::size_t k = std::min(n, to_us_.size() - pos_);
    pos_ += k;
    return std::span(to_us_).subspan(pos_ - k, k);
  }
  void receive(std::span<const std::uint8_t> b) override {
    to_peer_.insert(to_peer_.end(), b.begin(), b.end());
  }
  std::span<const std::uint8_t> rest() override {
    pump();
    static constexpr std::string_view kData = "the peer's first application data";
    if (peer_.advance().ok() && peer_.advance()->done) {
      (void)peer_.write_plaintext({reinterpret_cast<const std::uint8_t*>(kData.data()), kData.size()});
      (void)peer_.shutdown();
      pump();
    }
    const std::size_t from = pos_;
    pos_ = to_us_.size();
    return std::span(to_us_).subspan(from);
  }

 private:
  // Runs the peer's handshake as far as our bytes allow; its output, edited, goes to us.
  void pump() {
    for (;;) {
      const Result<HandshakeStatus> st = peer_.advance();
      peer_.take_output(out_);
      const std::size_t base = to_us_.size();
      to_us_.insert(to_us_.end(), out_.begin(), out_.end());
      for (const auto& [at, x] : edits_)
        if (at >= base && at < to_us_.size()) to_us_[at] ^= x;
      if (!st || st->done || to_peer_.empty()) return;
      const std::size_t k = std::min(st->read_bytes, to_peer_.size());
      peer_.feed(std::span(to_peer_).first(k));
      to_peer_.erase(to_peer_.begin(), to_peer_.begin() + static_cast<std::ptrdiff_t>(k));
    }
  }

  Session peer_;
  std::vector<std::pair<std::uint16_t, std::uint8_t>> edits_;
  std::vector<std::uint8_t> to_peer_, to_us_, out_;
  std::size_t pos_ = 0;
};

Result<Session> session(Role role, bool tls12_only) {
  return role == Role::server ? Session::server(*contexts->server[tls12_only])
                              : Session::client(*contexts->client[tls12_only], "localhost");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const std::uint8_t flags = in.u8();
  const Role role = flags & 1 ? Role::server : Role::client;
  const bool take_keys = flags & 4;
  const bool tls12_only = flags & 8;
  const bool release_idle = flags & 16;
  Result<Session> made = session(role, tls12_only);
  FUZZ_CHECK(made.ok(), "a session cannot be made");
  Session& s = *made;
  std::unique_ptr<Peer> peer;
  if (flags & 2) {
    Result<Session> other = session(role == Role::server ? Role::client : Role::server, tls12_only);
    FUZZ_CHECK(other.ok(), "a session cannot be made");
    peer = std::make_unique<SessionPeer>(std::move(*other), in);
  } else {
    peer = std::make_unique<InputPeer>(in);
  }
  std::vector<std::uint8_t> sent;

  // Each step ends or feeds at least one byte, and the peer's stream is finite.
  for (;;) {
    const Result<HandshakeStatus> st = s.advance();
    s.take_output(sent);
    peer->receive(sent);
    if (!st) {
      FUZZ_CHECK(!st.error().message.empty(), "a handshake error without a message");
      FUZZ_CHECK(!s.advance().ok(), "a failed handshake recovered");
      return 0;
    }
    if (st->done) break;
    FUZZ_CHECK(st->read_bytes > 0 && st->read_bytes <= kMaxRecord,
               "a read request of no bytes, or of more than one record");
    const auto chunk = peer->next(st->read_bytes);
    if (chunk.empty()) return 0;  // the peer went quiet: a transport would time out
    s.feed(chunk);
  }

  // Done: the hand-over, or the userspace transport on whatever the peer sends next.
  FUZZ_CHECK(s.advance().ok() && s.advance()->done, "a finished handshake is not done");
  (void)s.info();
  if (take_keys) {
    (void)s.take_keys();
    return 0;
  }
  const auto rest = peer->rest();
  if (rest.empty()) return 0;
  s.feed(rest);
  std::array<std::uint8_t, 4096> buf;
  for (std::size_t i = 0; i <= rest.size(); ++i) {  // each read yields at least a byte, or ends
    const Result<ReadResult> r = s.read_plaintext(buf);
    s.take_output(sent);
    if (release_idle) s.release_idle_buffers();  // as serve does between requests
    if (!r || r->kind != ReadResult::Kind::data) return 0;
    FUZZ_CHECK(r->bytes > 0 && r->bytes <= buf.size(), "a read of no bytes, or past the buffer");
  }
  FUZZ_CHECK(false, "reads do not end");
  return 0;
}
