// The Boost.Asio stream on a kTLS kernel (run in tools/kernel-lab as root): our client <-> our
// server and against openssl s_server / s_client, TLS 1.2 and 1.3 x three AEADs, record-boundary
// payloads and 8 MiB both ways, with transport() == kernel proven by /proc/net/tls_stat (our
// open kTLS sockets) and the kernel's record sequence numbers (getsockopt TLS_TX/TLS_RX), which
// move with what we send and receive; s_server's TLS 1.3 tickets consumed on the way; close_notify
// -> eof, truncation -> stream_truncated; and tools/asio-echo-server serving over kTLS.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <signal.h>

#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "ktls/asio/stream.h"
#include "ktls/conn/backend.h"
#include "ktls/probe/probe.h"
#include "tests/support/asio_scenarios.h"
#include "tests/support/asio_stream_pair.h"
#include "tests/support/child_process.h"
#include "tests/support/kernel_evidence.h"
#include "tests/support/openssl_peer.h"
#include "tests/support/tls_contexts.h"
#include "tests/support/tls_matrix.h"

using namespace wasi_ktls;
using namespace wasi_ktls::test;
using namespace std::chrono_literals;
namespace net = boost::asio;

namespace {

const bool kIgnoreSigpipe = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

StreamSetup kernel_only(std::string server_name = "") {
  return stream_options(Backend::ktls, std::move(server_name));
}

int fd_of(Stream& s) { return s.next_layer().native_handle(); }

// The kernel's record numbers for one of our streams, tracked along an exchange.
void check_moved(Stream& s, Direction d, Seqs& seqs, std::size_t n, const char* what) {
  if (d == Direction::tx)
    test::check_moved(fd_of(s), d, seqs.tx, n, 0, what);
  else
    test::check_moved(fd_of(s), d, seqs.rx, n, seqs.take_tickets(n), what);
}

void check_closed(Stream& s, const Seqs& seqs, const char* who) {
  // close_notify both ways, one alert record each.
  check_seqs(fd_of(s), Seqs{seqs.tx + 1, seqs.rx + 1}, who);
}

// A kTLS stream against an openssl peer: tls_stat's count of open kTLS sockets and the
// kernel's record numbers move with what it sends and receives.
StreamPeerExpect on_kernel(TlsVersion v, Role role, const TlsCounters& before, Seqs& seqs) {
  StreamPeerExpect e;
  e.backend = Backend::ktls;
  e.established = [&before, &seqs, v, role](Stream& ours) {
    require_kernel(ours);
    const TlsCounters open = tls_counters();
    CHECK(open.tx_sw - before.tx_sw == 1);
    CHECK(open.rx_sw - before.rx_sw == 1);
    // s_server's default 2 tickets (TLS 1.3) come first; our server sent its own in userspace.
    seqs = initial_seqs(v, role);
    CHECK(kernel_seq(fd_of(ours), Direction::tx) == seqs.tx);
  };
  e.sent = [&seqs](Stream& ours, std::size_t n) {
    check_moved(ours, Direction::tx, seqs, n, "tx");
  };
  e.received = [&seqs](Stream& ours, std::size_t n) {
    check_moved(ours, Direction::rx, seqs, n, "rx");
  };
  e.closed = [&seqs](Stream& ours) { check_closed(ours, seqs, "after close_notify"); };
  return e;
}

}  // namespace

TEST_CASE("the lab kernel takes every version and cipher both ways") {
  const Probe& p = kernel_probe();
  REQUIRE_MESSAGE(p.ulp.ok, p.ulp.reason);
  for (TlsVersion v : kAllVersions)
    for (Cipher c : kAllCiphers) CHECK(p.supports(v, c));
}

TEST_CASE("our client <-> our server on kTLS (coroutines): payloads, sequence numbers, close") {
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      const std::string name = combo_name(v, c);
      INFO(name);
      with_balanced_sessions(name + " our client <-> our server", [&](const TlsCounters& before) {
        Seqs cs, ss;
        Stream* client_stream = nullptr;
        StreamPairExpect expect;
        expect.backend = Backend::ktls;
        expect.established = [&](Stream& client, Stream& server) {
          require_kernel(client);
          require_kernel(server);
          const TlsCounters open = tls_counters();
          CHECK(open.tx_sw - before.tx_sw == 2);
          CHECK(open.rx_sw - before.rx_sw == 2);
          // TLS 1.2: Finished was record 0 both ways. TLS 1.3: the server's TX starts after its 2
          // tickets, which the client meets (as control records) on its first read.
          client_stream = &client;
          cs = initial_seqs(v, Role::client);
          ss = initial_seqs(v, Role::server);
          check_seqs(fd_of(client), cs, "client after handshake");
          check_seqs(fd_of(server), ss, "server after handshake");
        };
        expect.transferred = [&](Stream& from, Stream& to, std::size_t n) {
          const bool up = &from == client_stream;
          check_moved(from, Direction::tx, up ? cs : ss, n, up ? "client tx" : "server tx");
          check_moved(to, Direction::rx, up ? ss : cs, n, up ? "server rx" : "client rx");
        };
        expect.closed = [&](Stream& client, Stream& server) {
          check_closed(client, cs, "client after close_notify");
          check_closed(server, ss, "server after close_notify");
        };
        pair_every_payload(v, c, expect);
      });
    }
  }
}

TEST_CASE("callback style on kTLS: async_write/async_read chains and shutdown") {
  const TlsVersion v = TlsVersion::tls13;
  const Cipher c = Cipher::chacha20_poly1305;
  net::io_context io;
  StreamPair p = our_pair(io, client_policy(v, c), server_policy(v, c), kernel_only("localhost"),
                          kernel_only());
  REQUIRE(!p.client_ec);
  REQUIRE(!p.server_ec);
  require_kernel(*p.client);
  const Bytes up = random_bytes(100000, 21), down = random_bytes(70000, 22);
  Bytes sgot(up.size()), cgot(down.size());
  int steps = 0;
  net::async_write(*p.client, net::buffer(up), [&](error_code ec, std::size_t) {
    REQUIRE_MESSAGE(!ec, p.client->last_error());
    ++steps;
  });
  net::async_read(*p.server, net::buffer(sgot), [&](error_code ec, std::size_t) {
    REQUIRE_MESSAGE(!ec, p.server->last_error());
    ++steps;
    net::async_write(*p.server, net::buffer(down), [&](error_code ec, std::size_t) {
      REQUIRE_MESSAGE(!ec, p.server->last_error());
      ++steps;
      // Completes once the client answers its close_notify.
      p.server->async_shutdown([&](error_code ec) {
        CHECK_MESSAGE(!ec, p.server->last_error());
        ++steps;
      });
    });
  });
  net::async_read(*p.client, net::buffer(cgot), [&](error_code ec, std::size_t) {
    REQUIRE_MESSAGE(!ec, p.client->last_error());
    ++steps;
    static std::uint8_t b[16];
    p.client->async_read_some(net::buffer(b), [&](error_code ec, std::size_t) {
      CHECK(ec == net::error::eof);
      ++steps;
      p.client->async_shutdown([&](error_code ec) {
        CHECK_MESSAGE(!ec, p.client->last_error());
        ++steps;
      });
    });
  });
  run(io);
  CHECK(steps == 7);
  CHECK(sgot == up);
  CHECK(cgot == down);
}

TEST_CASE("our client (kTLS) <-> openssl s_server: tickets consumed, payloads, close") {
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      const std::string name = combo_name(v, c);
      INFO(name);
      with_balanced_sessions(name + " our client <-> s_server", [&](const TlsCounters& before) {
        Seqs seqs;
        client_against_s_server(v, c, on_kernel(v, Role::client, before, seqs));
      });
    }
  }
}

TEST_CASE("openssl s_client <-> our server (kTLS): payloads, close") {
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      const std::string name = combo_name(v, c);
      INFO(name);
      with_balanced_sessions(name + " s_client <-> our server", [&](const TlsCounters& before) {
        Seqs seqs;
        server_against_s_client(v, c, on_kernel(v, Role::server, before, seqs));
      });
    }
  }
}

TEST_CASE("truncation on kTLS: TCP FIN without close_notify is stream_truncated") {
  for (TlsVersion v : kAllVersions) {
    for (bool server_drops : {true, false}) {
      INFO(to_string(v) << (server_drops ? " server drops" : " client drops"));
      StreamPairExpect expect;
      expect.backend = Backend::ktls;
      expect.established = [](Stream& client, Stream& server) {
        require_kernel(client);
        require_kernel(server);
      };
      truncated_by_fin(v, server_drops, expect);
    }
  }
}

TEST_CASE("a certificate failure on the kernel path is still explained in words") {
  net::io_context io;
  Policy cp = client_policy(TlsVersion::tls13, Cipher::aes_128_gcm);
  cp.ca = PemSource::file(pki().other_ca);
  StreamPair p = our_pair(io, cp, server_policy(TlsVersion::tls13, Cipher::aes_128_gcm),
                          kernel_only("localhost"), kernel_only());
  CHECK(p.client_ec == asio::errc::handshake_failed);
  MESSAGE(p.client->last_error());
  CHECK(p.client->last_error().find("unable to get local issuer certificate") != std::string::npos);
}

TEST_CASE("tools/asio-echo-server echoes over kTLS to our stream and to openssl s_client") {
  const char* kServer = "bazel-bin/tools/asio-echo-server";
  auto server = ChildProcess::spawn({kServer, "--cert", pki().server_cert, "--key",
                                     pki().server_key, "--port", "0", "--backend", "ktls",
                                     "--max-connections", "2"});
  REQUIRE_MESSAGE(server.ok(), (server.ok() ? "" : server.error().message));
  Status up = server->read_until(
      [](const std::string& o) { return o.find('\n') != std::string::npos; }, kAsioTimeout);
  REQUIRE_MESSAGE(up.ok(), server->output());
  const std::string first = server->output().substr(0, server->output().find('\n'));
  REQUIRE(first.rfind("listening on 127.0.0.1:", 0) == 0);
  const int port = std::stoi(first.substr(first.rfind(':') + 1));
  {
    INFO("our stream as the client");
    net::io_context io;
    auto [ctx, client, ec] = connect_to(
        io, port, client_policy(TlsVersion::tls13, Cipher::aes_128_gcm), kernel_only("localhost"));
    REQUIRE_MESSAGE(!ec, client->last_error());
    require_kernel(*client);
    const Bytes data = random_bytes(300000, 31);
    transfer(io, *client, *client, data);  // written to the server, read back from it
    std::uint64_t rx = 0;
    test::check_moved(fd_of(*client), Direction::rx, rx, data.size(), 2, "client rx (echo)");
    REQUIRE(!shutdown(io, *client));
    CHECK(read_once(io, *client).first == net::error::eof);
  }
  {
    INFO("openssl s_client (not -quiet: it ends with close_notify when stdin ends)");
    OpensslPeer peer = spawn_openssl({"s_client", "-connect", "127.0.0.1:" + std::to_string(port),
                               "-CAfile", pki().ca, "-servername", "localhost", "-tls1_2",
                               "-verify_return_error"},
                              "echo_s_client");
    const std::string line = "echo me over kTLS\n";
    REQUIRE(feed_stdin(peer, line).ok());
    Status got = peer.proc->read_until(
        [&](const std::string& o) { return o.find(line) != std::string::npos; }, kAsioTimeout);
    INFO("s_client stderr: " << peer.stderr_text());
    CHECK_MESSAGE(got.ok(), peer.proc->output());
    peer.proc->close_stdin();
    (void)peer.proc->wait(kAsioTimeout);
  }
  // One line per connection; the server exits after the second.
  Status lines = server->read_until(
      [](const std::string& o) {
        std::size_t n = 0;
        for (auto p = o.find(" end="); p != std::string::npos; p = o.find(" end=", p + 1)) ++n;
        return n >= 2;
      },
      kAsioTimeout);
  CHECK_MESSAGE(lines.ok(), server->output());
  auto status = server->wait(kAsioTimeout);
  REQUIRE(status.ok());
  CHECK(*status == 0);
  MESSAGE("asio-echo-server said:\n" << server->output());
  CHECK(server->output().find("transport=ktls echoed=300000 end=close_notify") != std::string::npos);
  CHECK(server->output().find("TLS 1.2") != std::string::npos);
}

TEST_CASE("a peer that never reads stalls only its own stream (kTLS)") {
  asio_stalled_peer_leaves_others_running(Backend::ktls, /*junk_first=*/false);
  asio_stalled_peer_leaves_others_running(Backend::ktls, /*junk_first=*/true);
}

TEST_CASE("terminal per-operation cancellation of handshake, read and write (kTLS)") {
  asio_per_operation_cancellation(Backend::ktls);
}

TEST_CASE("handlers run on their associated executor; one read at a time (kTLS)") {
  asio_associated_executor_and_one_op_per_lane(Backend::ktls);
}
