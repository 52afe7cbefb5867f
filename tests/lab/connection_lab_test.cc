// Connection on a kTLS kernel (run in tools/kernel-lab as root): our client and server against
// each other and against openssl s_server / s_client, TLS 1.2 and 1.3 x three AEADs, data both
// ways at record-boundary sizes and 8 MiB. Every case proves the kernel carried the records:
// transport() is the kernel, /proc/net/tls_stat counts our open kTLS sockets, and the
// kernel's own record sequence numbers (getsockopt TLS_TX/TLS_RX) moved by exactly the records
// we sent (and by at least the records needed for what we received from OpenSSL, whose record
// sizes depend on how it happened to read its stdin). Plus tickets, a peer's KeyUpdate (carried
// out where the kernel can rekey, else a clear error), close_notify, truncation and certificate
// failures against real peers.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <errno.h>
#include <signal.h>

#include <cstring>
#include <string>
#include <vector>

#include "ktls/conn/backend.h"
#include "ktls/conn/connection.h"
#include "ktls/probe/probe.h"
#include "tests/support/connection_pair.h"
#include "tests/support/connection_scenarios.h"
#include "tests/support/fd_count.h"
#include "tests/support/kernel_evidence.h"
#include "tests/support/message_of.h"
#include "tests/support/openssl_peer.h"
#include "tests/support/timer.h"
#include "tests/support/tls_contexts.h"
#include "tests/support/tls_matrix.h"

using namespace wasi_ktls;
using namespace wasi_ktls::test;
using namespace std::chrono_literals;

namespace {

// A dead peer must be an error on its pipe, not a signal that kills the test.
const bool kIgnoreSigpipe = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

ConnectionOptions kernel_only() {
  ConnectionOptions o;
  o.backend = Backend::ktls;  // a refusal is a failure here, never a quiet fallback
  o.handshake_timeout = 30s;
  o.io_timeout = 60s;
  return o;
}

}  // namespace

TEST_CASE("the lab kernel takes every version and cipher both ways") {
  const Probe& p = kernel_probe();
  REQUIRE_MESSAGE(p.ulp.ok, p.ulp.reason);
  for (TlsVersion v : kAllVersions)
    for (Cipher c : kAllCiphers) {
      INFO(combo_name(v, c));
      CHECK(p.supports(v, c));
    }
}

TEST_CASE("our client <-> our server on kTLS: payloads both ways, sequence numbers, close_notify") {
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      const std::string name = combo_name(v, c);
      INFO(name);
      const int fds_before = open_fd_count();
      with_balanced_sessions(name + " our client <-> our server", [&](const TlsCounters& before) {
        PairExpect expect;
        expect.client_options = expect.server_options = kernel_only();
        Seqs cs, ss;
        expect.established = [&](const Connection& client, const Connection& server) {
          require_kernel(client);
          require_kernel(server);
          const TlsCounters open = tls_counters();
          CHECK(open.tx_sw - before.tx_sw == 2);
          CHECK(open.rx_sw - before.rx_sw == 2);
          cs = initial_seqs(v, Role::client);
          ss = initial_seqs(v, Role::server);
          check_seqs(client.fd(), cs, "client after handshake");
          check_seqs(server.fd(), ss, "server after handshake");
        };
        expect.exchanged = [&](const Connection& client, const Connection& server, std::size_t n) {
          cs.tx += records(n);
          ss.rx += records(n);
          ss.tx += records(n);
          cs.rx += records(n) + cs.take_tickets(n);
          check_seqs(client.fd(), cs, "client");
          check_seqs(server.fd(), ss, "server");
        };
        expect.closed = [&](const Connection& client, const Connection& server) {
          // close_notify both ways, one alert record each.
          cs.tx += 1;
          ss.rx += 1;
          ss.tx += 1;
          cs.rx += 1;
          check_seqs(client.fd(), cs, "client after close_notify");
          check_seqs(server.fd(), ss, "server after close_notify");
        };
        exchange_every_payload(v, c, expect);
      });
      CHECK(open_fd_count() == fds_before);
    }
  }
}

TEST_CASE("our client (kTLS) <-> openssl s_server: payloads both ways, close_notify") {
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      const std::string name = combo_name(v, c);
      INFO(name);
      const int fds_before = open_fd_count();
      with_balanced_sessions(name + " our client <-> s_server", [&](const TlsCounters& before) {
        const int port = port_or_fail();
        OpensslPeer peer = start_s_server(port, openssl_pin(v, c));
        INFO("s_server stderr: " << peer.stderr_text());
        auto conn = connect_to(port, client_policy(v, c), kernel_only());
        REQUIRE_MESSAGE(conn.ok(), message_of(conn));
        Connection& client = *conn;
        require_kernel(client);
        CHECK(client.info().cipher == c);
        const TlsCounters open = tls_counters();
        CHECK(open.tx_sw - before.tx_sw == 1);
        CHECK(open.rx_sw - before.rx_sw == 1);

        // s_server's default 2 session tickets (TLS 1.3) come first; the data must follow.
        Seqs cs = initial_seqs(v, Role::client);
        check_seqs(client.fd(), cs, "client after handshake");
        std::uint64_t seed = 100;
        for (std::size_t n : kPayloads) {
          INFO(n << " bytes");
          send_to_peer(client, peer, random_bytes(n, seed++));
          cs.tx += records(n);
          CHECK(kernel_seq(client.fd(), Direction::tx) == cs.tx);
          receive_from_peer(client, peer, random_bytes(n, seed++));
          check_rx_range(client.fd(), cs, n);
        }
        Status closed = client.close();
        REQUIRE_MESSAGE(closed.ok(), message_of(closed));
        std::uint8_t buf[64];
        auto r = client.read(buf);  // s_server answers close_notify with its own
        REQUIRE_MESSAGE(r.ok(), message_of(r));
        CHECK(*r == 0);
        CHECK(kernel_seq(client.fd(), Direction::tx) == cs.tx + 1);
        CHECK(kernel_seq(client.fd(), Direction::rx) == cs.rx + 1);
        auto status = peer.proc->wait(kPeerTimeout);
        REQUIRE_MESSAGE(status.ok(), message_of(status));
        CHECK(*status == 0);
      });
      CHECK(open_fd_count() == fds_before);
    }
  }
}

TEST_CASE("openssl s_client <-> our server (kTLS): payloads both ways, close_notify") {
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      const std::string name = combo_name(v, c);
      INFO(name);
      const int fds_before = open_fd_count();
      with_balanced_sessions(name + " s_client <-> our server", [&](const TlsCounters& before) {
        ServedClient sc =
            serve_s_client(server_policy(v, c), openssl_pin(v, c), true, kernel_only());
        INFO("s_client stderr: " << sc.peer.stderr_text());
        REQUIRE_MESSAGE(sc.conn->ok(), message_of(*sc.conn));
        Connection& server = **sc.conn;
        require_kernel(server);
        CHECK(server.info().cipher == c);
        const TlsCounters open = tls_counters();
        CHECK(open.tx_sw - before.tx_sw == 1);
        CHECK(open.rx_sw - before.rx_sw == 1);

        // Our server's own 2 tickets went out in userspace, before the hand-over.
        Seqs ss = initial_seqs(v, Role::server);
        check_seqs(server.fd(), ss, "server after handshake");
        std::uint64_t seed = 200;
        for (std::size_t n : kPayloads) {
          INFO(n << " bytes");
          receive_from_peer(server, sc.peer, random_bytes(n, seed++));
          check_rx_range(server.fd(), ss, n);
          send_to_peer(server, sc.peer, random_bytes(n, seed++));
          ss.tx += records(n);
          CHECK(kernel_seq(server.fd(), Direction::tx) == ss.tx);
        }
        Status closed = server.close();
        REQUIRE_MESSAGE(closed.ok(), message_of(closed));
        std::uint8_t buf[64];
        auto r = server.read(buf);  // s_client answers close_notify with its own
        REQUIRE_MESSAGE(r.ok(), message_of(r));
        CHECK(*r == 0);
        CHECK(kernel_seq(server.fd(), Direction::tx) == ss.tx + 1);
        CHECK(kernel_seq(server.fd(), Direction::rx) == ss.rx + 1);
        auto status = sc.peer.proc->wait(kPeerTimeout);
        REQUIRE_MESSAGE(status.ok(), message_of(status));
        CHECK(*status == 0);
      });
      CHECK(open_fd_count() == fds_before);
    }
  }
}

namespace {

// The contract, whichever kernel runs it: where the probe says the kernel can rekey, the
// peer's KeyUpdate(update_requested) is carried out and data goes on both ways; elsewhere it is
// a clear error naming the kernel's limit.
void check_after_key_update(Connection& ours, OpensslPeer& peer, const char* who) {
  const std::string after = "after-keyupdate-815\n";
  if (kernel_probe().rekey.ok) {
    REQUIRE(feed_stdin(peer, after).ok());
    Bytes got(after.size());
    auto n = ours.read_full(got);
    REQUIRE_MESSAGE(n.ok(), message_of(n));
    CHECK(as_text(got) == after);
    const std::string reply = "reply-under-new-keys\n";
    REQUIRE(ours.write(reply).ok());
    Status s = peer.proc->read_until(
        [&](const std::string& out) { return out.find(reply) != std::string::npos; },
        kPeerTimeout);
    CHECK_MESSAGE(s.ok(), message_of(s));
    CHECK(kernel_seq(ours.fd(), Direction::rx) < 10);  // records under the new RX key
    return;
  }
  std::uint8_t buf[64];
  auto r = ours.read(buf);
  INFO("peer output: " << peer.proc->output());
  REQUIRE_FALSE(r.ok());
  MESSAGE(who << ": " << r.error().message);
  CHECK(r.error().message.find("KeyUpdate") != std::string::npos);
  CHECK(r.error().message.find("cannot rekey") != std::string::npos);
  CHECK(r.error().message.find("6.14") != std::string::npos);
}

}  // namespace

TEST_CASE("a peer's KeyUpdate(update_requested): rekeyed where the kernel can, else a clear error") {
  const Cipher c = Cipher::aes_128_gcm;
  const TlsVersion v = TlsVersion::tls13;
  const std::string marker = "ready-4711\n";
  MESSAGE("kernel rekey: " << kernel_probe().rekey.reason);
  {
    INFO("s_server sends KeyUpdate to our client");
    const int port = port_or_fail();
    // Not -quiet: s_server then reads commands from stdin; "K" = KeyUpdate, update requested.
    OpensslPeer peer = start_s_server(port, openssl_pin(v, c), /*quiet=*/false);
    auto conn = connect_to(port, client_policy(v, c), kernel_only());
    REQUIRE_MESSAGE(conn.ok(), message_of(conn));
    require_kernel(*conn);
    REQUIRE(feed_stdin(peer, marker).ok());
    Bytes got(marker.size());
    auto n = conn->read_full(got);
    REQUIRE_MESSAGE(n.ok(), message_of(n));
    CHECK(as_text(got) == marker);
    REQUIRE(feed_stdin(peer, "K\n").ok());
    check_after_key_update(*conn, peer, "our client");
  }
  {
    INFO("s_client sends KeyUpdate to our server");
    ServedClient sc = serve_s_client(server_policy(v, c), openssl_pin(v, c), /*quiet=*/false,
                                     kernel_only());
    REQUIRE_MESSAGE(sc.conn->ok(), message_of(*sc.conn));
    Connection& server = **sc.conn;
    require_kernel(server);
    REQUIRE(server.write(marker).ok());
    Status s = sc.peer.proc->read_until(
        [&](const std::string& out) { return out.find(marker) != std::string::npos; },
        kPeerTimeout);
    REQUIRE_MESSAGE(s.ok(), message_of(s));
    REQUIRE(feed_stdin(sc.peer, "K\n").ok());
    check_after_key_update(server, sc.peer, "our server");
  }
}

TEST_CASE("the peer closes first with close_notify: we read 0 and answer") {
  for (TlsVersion v : kAllVersions) {
    INFO(combo_name(v, Cipher::chacha20_poly1305));
    // Not -quiet: s_client then ends with close_notify when its stdin ends.
    ServedClient sc = serve_s_client(server_policy(v, Cipher::chacha20_poly1305),
                                     openssl_pin(v, Cipher::chacha20_poly1305), false,
                                     kernel_only());
    REQUIRE_MESSAGE(sc.conn->ok(), message_of(*sc.conn));
    Connection& server = **sc.conn;
    require_kernel(server);
    REQUIRE(feed_stdin(sc.peer, "bye\n").ok());
    Bytes got(4);
    auto n = server.read_full(got);
    REQUIRE_MESSAGE(n.ok(), message_of(n));
    CHECK(as_text(got) == "bye\n");
    sc.peer.proc->close_stdin();
    std::uint8_t buf[64];
    auto r = server.read(buf);
    REQUIRE_MESSAGE(r.ok(), message_of(r));
    CHECK(*r == 0);
    const std::uint64_t rx = kernel_seq(server.fd(), Direction::rx);
    CHECK(server.close().ok());
    auto status = sc.peer.proc->wait(kPeerTimeout);
    REQUIRE_MESSAGE(status.ok(), message_of(status));
    CHECK(*status == 0);
    CHECK(kernel_seq(server.fd(), Direction::rx) == rx);
  }
}

TEST_CASE("truncation: a peer killed without close_notify is an error, not EOF") {
  const TlsVersion v = TlsVersion::tls13;
  const Cipher c = Cipher::aes_256_gcm;
  {
    INFO("s_server killed under our client");
    const int port = port_or_fail();
    OpensslPeer peer = start_s_server(port, openssl_pin(v, c));
    auto conn = connect_to(port, client_policy(v, c), kernel_only());
    REQUIRE_MESSAGE(conn.ok(), message_of(conn));
    require_kernel(*conn);
    // Everything we sent has been consumed, so the kernel ends with FIN, not RST.
    send_to_peer(*conn, peer, random_bytes(3000, 5));
    receive_from_peer(*conn, peer, random_bytes(3000, 6));
    peer.proc->kill(SIGKILL);
    (void)peer.proc->wait(kPeerTimeout);
    std::uint8_t buf[64];
    auto r = conn->read(buf);
    REQUIRE_FALSE(r.ok());
    MESSAGE("our client: " << r.error().message);
    CHECK(r.error().message.find("truncation") != std::string::npos);
  }
  {
    INFO("s_client killed under our server");
    ServedClient sc = serve_s_client(server_policy(v, c), openssl_pin(v, c), true, kernel_only());
    REQUIRE_MESSAGE(sc.conn->ok(), message_of(*sc.conn));
    require_kernel(**sc.conn);
    send_to_peer(**sc.conn, sc.peer, random_bytes(3000, 7));
    sc.peer.proc->kill(SIGKILL);
    (void)sc.peer.proc->wait(kPeerTimeout);
    std::uint8_t buf[64];
    auto r = (*sc.conn)->read(buf);
    REQUIRE_FALSE(r.ok());
    MESSAGE("our server: " << r.error().message);
    CHECK(r.error().message.find("truncation") != std::string::npos);
  }
  {
    INFO("our server drops the socket under our client");
    Handshake h = handshake(client_policy(v, c), server_policy(v, c), "localhost", kernel_only(),
                            kernel_only());
    REQUIRE_MESSAGE(h.client->ok(), message_of(*h.client));
    REQUIRE_MESSAGE(h.server->ok(), message_of(*h.server));
    transfer(**h.server, **h.client, random_bytes(3000, 8));
    h.server.reset();
    std::uint8_t buf[64];
    auto r = (*h.client)->read(buf);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("truncation") != std::string::npos);
  }
}

TEST_CASE("certificate failures against openssl peers are explained in words") {
  for (TlsVersion v : kAllVersions) {
    const Cipher c = Cipher::aes_128_gcm;
    INFO(combo_name(v, c));
    const int fds_before = open_fd_count();
    {
      INFO("s_server with a certificate for another name");
      const int port = port_or_fail();
      OpensslPeer peer = start_s_server(port, openssl_pin(v, c), true, pki().wronghost_cert,
                                        pki().wronghost_key);
      auto conn = connect_to(port, client_policy(v, c), kernel_only());
      REQUIRE_FALSE(conn.ok());
      MESSAGE("our client: " << conn.error().message);
      CHECK(conn.error().message.find("hostname mismatch") != std::string::npos);
    }
    {
      INFO("s_server from a CA we don't trust");
      const int port = port_or_fail();
      OpensslPeer peer = start_s_server(port, openssl_pin(v, c));
      Policy cp = client_policy(v, c);
      cp.ca = PemSource::file(pki().other_ca);
      auto conn = connect_to(port, cp, kernel_only());
      REQUIRE_FALSE(conn.ok());
      MESSAGE("our client: " << conn.error().message);
      CHECK(conn.error().message.find("unable to get local issuer certificate") !=
            std::string::npos);
    }
    {
      INFO("s_server with an expired certificate");
      const int port = port_or_fail();
      OpensslPeer peer = start_s_server(port, openssl_pin(v, c), true, pki().expired_cert,
                                        pki().expired_key);
      auto conn = connect_to(port, client_policy(v, c), kernel_only());
      REQUIRE_FALSE(conn.ok());
      MESSAGE("our client: " << conn.error().message);
      CHECK(conn.error().message.find("certificate has expired") != std::string::npos);
    }
    {
      INFO("s_client checks our server's name and refuses it");
      Policy sp = server_policy(v, c);
      use_certificate(sp, pki().wronghost_cert, pki().wronghost_key);
      ServedClient sc = serve_s_client(sp, [&] {
        auto a = openssl_pin(v, c);
        a.insert(a.end(), {"-verify_hostname", "localhost"});
        return a;
      }(), true, kernel_only());
      REQUIRE_FALSE(sc.conn->ok());
      MESSAGE("our server: " << sc.conn->error().message);
      CHECK(sc.conn->error().message.find("bad_certificate (42)") != std::string::npos);
    }
    {
      INFO("s_client without the required client certificate");
      Policy sp = server_policy(v, c);
      require_client_certificate(sp);
      ServedClient sc = serve_s_client(sp, openssl_pin(v, c), true, kernel_only());
      REQUIRE_FALSE(sc.conn->ok());
      MESSAGE("our server: " << sc.conn->error().message);
      CHECK(sc.conn->error().message.find("did not return a certificate") != std::string::npos);
    }
    {
      INFO("s_client with the required client certificate");
      Policy sp = server_policy(v, c);
      require_client_certificate(sp);
      auto args = openssl_pin(v, c);
      args.insert(args.end(), {"-cert", pki().client_cert, "-key", pki().client_key});
      ServedClient sc = serve_s_client(sp, args, true, kernel_only());
      REQUIRE_MESSAGE(sc.conn->ok(), message_of(*sc.conn));
      require_kernel(**sc.conn);
      CHECK((*sc.conn)->info().peer_subject.find("wasi-ktls test client") != std::string::npos);
      receive_from_peer(**sc.conn, sc.peer, random_bytes(20000, 11));
    }
    CHECK(open_fd_count() == fds_before);
  }
}

TEST_CASE("client data right behind its Finished reaches the server's kernel RX intact") {
  // TLS 1.3: connect() returns once our Finished is out; data written at once is queued in
  // the server's socket before its handshake ends, and TLS_RX must parse it from there.
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      INFO(combo_name(v, c));
      const Bytes data = random_bytes(3 * kRecord + 5, 31);
      Connection server =
          data_right_behind_finished(client_policy(v, c), server_policy(v, c), kernel_only(), data);
      require_kernel(server);
      const Seqs ss = initial_seqs(v, Role::server);
      CHECK(kernel_seq(server.fd(), Direction::rx) == ss.rx + records(data.size()));
    }
  }
}

TEST_CASE("a kTLS read that times out is an error and the connection goes on") {
  ConnectionOptions o = kernel_only();
  o.io_timeout = 500ms;
  Handshake h = handshake(client_policy(TlsVersion::tls13, Cipher::aes_128_gcm),
                         server_policy(TlsVersion::tls13, Cipher::aes_128_gcm), "localhost", o,
                          kernel_only());
  REQUIRE_MESSAGE(h.client->ok(), message_of(*h.client));
  REQUIRE_MESSAGE(h.server->ok(), message_of(*h.server));
  require_kernel(**h.client);
  std::uint8_t buf[64];
  Timer t;
  auto r = (*h.client)->read(buf);
  REQUIRE_FALSE(r.ok());
  MESSAGE("our client: " << r.error().message << " after " << t.seconds() << " s");
  CHECK(t.seconds() < 10);
  // The same words as the userspace transport, not a bare EAGAIN.
  CHECK(r.error().message.find("timed out reading") == 0);
  CHECK(r.error().sys_errno == ETIMEDOUT);
  transfer(**h.server, **h.client, random_bytes(1000, 32));
}

TEST_CASE("one reader and one writer thread per connection, at once (kTLS)") {
  PairExpect expect;
  expect.client_options = expect.server_options = kernel_only();
  expect.established = [](const Connection& client, const Connection& server) {
    require_kernel(client);
    require_kernel(server);
  };
  reader_and_writer_threads(expect, 16u << 20);
}
