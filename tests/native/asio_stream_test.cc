// The Boost.Asio stream on the host (no kTLS here, so auto picks userspace and says why): our
// client <-> our server and against openssl s_server / s_client, TLS 1.2 and 1.3 x three AEADs,
// record-boundary payloads and 8 MiB both ways, in coroutine (co_await use_awaitable) and
// callback style, through async_read/async_write; close_notify -> eof, truncation ->
// stream_truncated, certificate failures readable in last_error().
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <signal.h>
#include <stdlib.h>

#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "ktls/asio/stream.h"
#include "ktls/conn/backend.h"
#include "ktls/probe/probe.h"
#include "tests/support/asio_scenarios.h"
#include "tests/support/asio_stream_pair.h"
#include "tests/support/openssl_peer.h"
#include "tests/support/tls_contexts.h"
#include "tests/support/tls_matrix.h"

using namespace wasi_ktls;
using namespace wasi_ktls::test;
using namespace std::chrono_literals;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

const bool kIgnoreSigpipe = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

bool host_has_ulp() { return kernel_probe().ulp.ok; }

void check_transport(const Stream& s, const std::string& combo) {
  if (host_has_ulp()) {
    CHECK(s.transport() == Transport::kernel);
    return;
  }
  INFO("reason: " << s.transport_reason());
  CHECK(s.transport() == Transport::userspace);
  CHECK(s.transport_reason().find(kernel_probe().ulp.reason) != std::string::npos);
  CHECK(s.transport_reason().find(combo.substr(4)) != std::string::npos);
}

}  // namespace

TEST_CASE("our client <-> our server (coroutines): every version and cipher, payloads, close") {
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      const std::string name = combo_name(v, c);
      INFO(name);
      StreamPairExpect expect;
      expect.established = [&](Stream& client, Stream& server) {
        check_transport(client, name);
        check_transport(server, name);
        if (v == TlsVersion::tls13 && c == Cipher::aes_128_gcm)
          MESSAGE("transport " << to_string(client.transport()) << ", reason: "
                               << client.transport_reason());
      };
      pair_every_payload(v, c, expect);
    }
  }
}

TEST_CASE("callback style: handshake, async_write/async_read chains, shutdown") {
  const TlsVersion v = TlsVersion::tls12;
  const Cipher c = Cipher::chacha20_poly1305;
  net::io_context io;
  AsioContext cctx(Role::client, client_policy(v, c)), sctx(Role::server, server_policy(v, c));
  tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  auto client_owned = make_stream(io, cctx, stream_options(Backend::auto_, "localhost"));
  Stream& client = *client_owned;
  std::unique_ptr<Stream> server;
  const Bytes up = random_bytes(100000, 11), down = random_bytes(70000, 12);
  Bytes server_got(up.size()), client_got(down.size());
  std::vector<std::string> events;

  acceptor.async_accept([&](error_code ec, tcp::socket sock) {
    REQUIRE(!ec);
    server = make_stream(std::move(sock), sctx, stream_options(Backend::auto_));
    server->async_handshake(Stream::server, [&](error_code ec) {
      REQUIRE_MESSAGE(!ec, server->last_error());
      events.push_back("server handshake");
      net::async_read(*server, net::buffer(server_got), [&](error_code ec, std::size_t n) {
        REQUIRE_MESSAGE(!ec, server->last_error());
        CHECK(n == up.size());
        events.push_back("server read");
        net::async_write(*server, net::buffer(down), [&](error_code ec, std::size_t) {
          REQUIRE_MESSAGE(!ec, server->last_error());
          events.push_back("server wrote");
          // The client's close_notify comes as eof; answering it completes its shutdown.
          static std::uint8_t b[16];
          server->async_read_some(net::buffer(b), [&](error_code ec, std::size_t) {
            CHECK(ec == net::error::eof);
            events.push_back("server eof");
            server->async_shutdown([&](error_code ec) {
              CHECK_MESSAGE(!ec, server->last_error());
              events.push_back("server shutdown");
            });
          });
        });
      });
    });
  });
  client.next_layer().async_connect(acceptor.local_endpoint(), [&](error_code ec) {
    REQUIRE(!ec);
    client.async_handshake(Stream::client, [&](error_code ec) {
      REQUIRE_MESSAGE(!ec, client.last_error());
      events.push_back("client handshake");
      net::async_write(client, net::buffer(up), [&](error_code ec, std::size_t) {
        REQUIRE_MESSAGE(!ec, client.last_error());
        net::async_read(client, net::buffer(client_got), [&](error_code ec, std::size_t) {
          REQUIRE_MESSAGE(!ec, client.last_error());
          events.push_back("client read");
          client.async_shutdown([&](error_code ec) {
            CHECK_MESSAGE(!ec, client.last_error());
            events.push_back("client shutdown");
          });
        });
      });
    });
  });
  run(io);
  CHECK(events.size() == 8);
  CHECK(server_got == up);
  CHECK(client_got == down);
}

TEST_CASE("our client <-> openssl s_server: every version and cipher, payloads, close") {
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      const std::string name = combo_name(v, c);
      INFO(name);
      StreamPeerExpect expect;
      expect.established = [&](Stream& client) { check_transport(client, name); };
      client_against_s_server(v, c, expect);
    }
  }
}

TEST_CASE("openssl s_client <-> our server: every version and cipher, payloads, close") {
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      const std::string name = combo_name(v, c);
      INFO(name);
      StreamPeerExpect expect;
      expect.established = [&](Stream& server) { check_transport(server, name); };
      server_against_s_client(v, c, expect);
    }
  }
}

TEST_CASE("truncation: TCP FIN without close_notify is stream_truncated, not eof") {
  for (TlsVersion v : kAllVersions) {
    for (bool server_drops : {true, false}) {
      INFO(to_string(v) << (server_drops ? " server drops" : " client drops"));
      truncated_by_fin(v, server_drops, StreamPairExpect{});
    }
  }
}

TEST_CASE("certificate failures fail the handshake with the reason in last_error()") {
  for (TlsVersion v : kAllVersions) {
    const Cipher c = Cipher::aes_128_gcm;
    INFO(combo_name(v, c));
    {
      INFO("our server with a certificate for another name");
      net::io_context io;
      Policy sp = server_policy(v, c);
      use_certificate(sp, pki().wronghost_cert, pki().wronghost_key);
      StreamPair p = our_pair(io, client_policy(v, c), sp,
                              stream_options(Backend::auto_, "localhost"),
                              stream_options(Backend::auto_));
      CHECK(p.client_ec == asio::errc::handshake_failed);
      MESSAGE("client: " << p.client_ec.message() << ": " << p.client->last_error());
      CHECK(p.client->last_error().find("hostname mismatch") != std::string::npos);
      REQUIRE(p.server);
      CHECK(p.server_ec == asio::errc::handshake_failed);
      MESSAGE("server: " << p.server->last_error());
      CHECK(p.server->last_error().find("bad_certificate (42)") != std::string::npos);
      // The failed stream refuses data, saying why.
      auto r = read_once(io, *p.client);
      CHECK(r.first == asio::errc::not_established);
    }
    {
      INFO("s_server from a CA we don't trust");
      net::io_context io;
      const int port = port_or_fail();
      OpensslPeer peer = start_s_server(port, openssl_pin(v, c));
      Policy cp = client_policy(v, c);
      cp.ca = PemSource::file(pki().other_ca);
      auto [ctx, client, ec] =
          connect_to(io, port, cp, stream_options(Backend::auto_, "localhost"));
      CHECK(ec == asio::errc::handshake_failed);
      MESSAGE("client: " << client->last_error());
      CHECK(client->last_error().find("unable to get local issuer certificate") !=
            std::string::npos);
    }
  }
}

TEST_CASE("backend choice: ktls without the TLS ULP is an error; WASI_KTLS_BACKEND honoured") {
  struct Restore {
    ~Restore() { ::unsetenv("WASI_KTLS_BACKEND"); }
  } restore;
  const TlsVersion v = TlsVersion::tls13;
  const Cipher c = Cipher::chacha20_poly1305;
  if (!host_has_ulp()) {
    net::io_context io;
    StreamPair p = our_pair(io, client_policy(v, c), server_policy(v, c),
                            stream_options(Backend::ktls, "localhost"),
                            stream_options(Backend::auto_));
    CHECK(p.client_ec == asio::errc::backend_unavailable);
    MESSAGE(p.client->last_error());
    CHECK(p.client->last_error().find("backend ktls requested but") == 0);
    CHECK(p.client->last_error().find(kernel_probe().ulp.reason) != std::string::npos);
  }
  {
    ::setenv("WASI_KTLS_BACKEND", "userspace", 1);
    net::io_context io;
    StreamSetup env;  // backend unset: from the environment
    env.server_name = "localhost";
    StreamPair p = our_pair(io, client_policy(v, c), server_policy(v, c), env, StreamSetup{});
    CHECK(p.client->backend() == Backend::userspace);
    REQUIRE_MESSAGE(!p.client_ec, p.client->last_error());
    REQUIRE_MESSAGE(!p.server_ec, p.server->last_error());
    CHECK(p.client->transport() == Transport::userspace);
    CHECK(p.client->transport_reason() == "userspace requested");
    CHECK(p.server->transport_reason() == "userspace requested");
    transfer(io, *p.client, *p.server, random_bytes(30000, 5));
  }
  {
    ::setenv("WASI_KTLS_BACKEND", "kernel-please", 1);
    net::io_context io;
    StreamSetup env;
    env.server_name = "localhost";
    AsioContext ctx(Role::client, client_policy(v, c));
    auto s = make_stream(io, ctx, env);
    error_code ec;
    s->async_handshake(Stream::client, [&](error_code e) { ec = e; });
    run(io);
    CHECK(ec == asio::errc::backend_unavailable);
    CHECK(s->last_error().find("kernel-please") != std::string::npos);
  }
  {
    INFO("a server handshake on a client-only context fails, saying why");
    net::io_context io;
    AsioContext ctx(Role::client, client_policy(v, c));
    auto s = make_stream(io, ctx, stream_options(Backend::auto_));
    error_code ec;
    s->async_handshake(Stream::server, [&](error_code e) { ec = e; });
    run(io);
    CHECK(ec == asio::errc::handshake_failed);
    MESSAGE(s->last_error());
  }
}

TEST_CASE("a peer that never reads stalls only its own stream (userspace)") {
  asio_stalled_peer_leaves_others_running(Backend::auto_, /*junk_first=*/false);
  asio_stalled_peer_leaves_others_running(Backend::auto_, /*junk_first=*/true);
}

TEST_CASE("terminal per-operation cancellation of handshake, read and write") {
  asio_per_operation_cancellation(Backend::auto_);
}

TEST_CASE("handlers run on their associated executor; one read at a time") {
  asio_associated_executor_and_one_op_per_lane(Backend::auto_);
}
