// Feeds the handshake Session (handshake/session.h) arbitrary peer bytes, in either role,
// through the driver loop every transport uses: advance(), drop what it sends, read exactly
// the read_bytes it asks for from the input, feed, again; after a finished handshake,
// take_keys() and a userspace read of whatever follows. Contexts are real (a throw-away PKI
// from tools/make-test-pki, verification on, mTLS optional, ALPN), so the seeds, flights
// captured from openssl s_client/s_server, reach deep into the handshake. Oracles: no crash;
// no hang (every step consumes input or ends; a step that asks for no bytes without being
// done is a finding); bounded memory (a read request is at most one TLS record, header
// included, and -rss_limit_mb holds the rest); after done, advance() stays done.
//
// Input: byte 0 bit 0 = we are the server; then the peer's bytes.
// fuzz-sources: handshake/session.cc handshake/policy.cc handshake/key_schedule.cc handshake/openssl_error.cc handshake/openssl_memory.cc handshake/tls_codes.cc handshake/tls_params.cc handshake/traffic_keys.cc base/result.cc tests/support/test_pki.cc
// fuzz-libs: -lfmt -lssl -lcrypto
// fuzz-flags: -max_len=16384
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
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
  std::optional<TlsContext> client, server;
};
Contexts* contexts = nullptr;

TlsContext make(Role role, const test::TestPki& pki) {
  Policy p;
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
  contexts = new Contexts{std::move(*pki), std::nullopt, std::nullopt};
  contexts->client = make(Role::client, contexts->pki);
  contexts->server = make(Role::server, contexts->pki);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const bool server = in.u8() & 1;
  Result<Session> made =
      server ? Session::server(*contexts->server) : Session::client(*contexts->client, "localhost");
  FUZZ_CHECK(made.ok(), "a session cannot be made");
  Session& s = *made;
  std::vector<std::uint8_t> sent;

  // Each step either ends or consumes at least one input byte, so size + 1 steps suffice.
  for (std::size_t step = 0;; ++step) {
    FUZZ_CHECK(step <= size + 1, "the handshake loops without consuming input");
    const Result<HandshakeStatus> st = s.advance();
    s.take_output(sent);  // what we would send; the peer here is the input
    if (!st) {
      FUZZ_CHECK(!st.error().message.empty(), "a handshake error without a message");
      FUZZ_CHECK(!s.advance().ok(), "a failed handshake recovered");
      return 0;
    }
    if (st->done) break;
    FUZZ_CHECK(st->read_bytes > 0 && st->read_bytes <= kMaxRecord,
               "a read request of no bytes, or of more than one record");
    const auto chunk = in.bytes(st->read_bytes);
    if (chunk.empty()) return 0;  // the peer went quiet: a transport would time out
    s.feed(chunk);
  }

  // Done: the hand-over, or the userspace transport on whatever the peer sent next.
  FUZZ_CHECK(s.advance().ok() && s.advance()->done, "a finished handshake is not done");
  (void)s.info();
  if (in.u8() & 1) {
    (void)s.take_keys();
    return 0;
  }
  const auto rest = in.rest();
  if (rest.empty()) return 0;
  s.feed(rest);
  std::array<std::uint8_t, 4096> buf;
  for (std::size_t i = 0; i <= rest.size(); ++i) {  // each read takes a record or ends
    const Result<ReadResult> r = s.read_plaintext(buf);
    s.take_output(sent);
    if (!r || r->kind != ReadResult::Kind::data) return 0;
    FUZZ_CHECK(r->bytes <= buf.size(), "read more than the buffer");
  }
  FUZZ_CHECK(false, "reads do not end");
  return 0;
}
