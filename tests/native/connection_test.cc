// Connection on the host (no kTLS here): our client and our server over loopback TCP. Proves
// the whole path a user sees: handshake, the backend decision and its reason, data both ways
// for every version and cipher at record-boundary sizes and 8 MiB, close_notify, truncation,
// and certificate failures explained in words on both sides.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <errno.h>
#include <stdlib.h>

#include <string>

#include "ktls/conn/backend.h"
#include "ktls/conn/connection.h"
#include "ktls/probe/probe.h"
#include "ktls/io/tcp_socket.h"
#include "tests/support/connection_pair.h"
#include "tests/support/connection_scenarios.h"
#include "tests/support/fd_count.h"
#include "tests/support/message_of.h"
#include "tests/support/tls_contexts.h"
#include "tests/support/tls_matrix.h"

using namespace wasi_ktls;
using namespace wasi_ktls::test;
using namespace std::chrono_literals;

namespace {

ConnectionOptions options(Backend b) {
  ConnectionOptions o;
  o.backend = b;
  o.handshake_timeout = 10s;
  o.io_timeout = 20s;
  return o;
}

// The host has no kTLS; where a kernel with the TLS ULP runs this test, auto picks it.
bool host_has_ulp() { return kernel_probe().ulp.ok; }

}  // namespace

TEST_CASE("our client <-> our server: every version and cipher, payloads both ways, close_notify") {
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      const std::string name = combo_name(v, c);
      INFO(name);
      PairExpect expect;
      expect.client_options = expect.server_options = options(Backend::auto_);
      expect.established = [&](const Connection& client, const Connection& server) {
        for (const Connection* conn : {&client, &server}) {
          if (host_has_ulp()) {
            CHECK(conn->transport() == Transport::kernel);
            continue;
          }
          CHECK(conn->transport() == Transport::userspace);
          // The reason carries the probe's own words for the missing ULP.
          INFO("reason: " << conn->transport_reason());
          if (conn == &client && v == TlsVersion::tls13 && c == Cipher::aes_128_gcm)
            MESSAGE("transport_reason: " << conn->transport_reason());
          CHECK(conn->transport_reason().find(kernel_probe().ulp.reason) != std::string::npos);
          CHECK(conn->transport_reason().find("TLS ULP") != std::string::npos);
          CHECK(conn->transport_reason().find(name.substr(4)) != std::string::npos);
        }
      };
      exchange_every_payload(v, c, expect);
    }
  }
}

TEST_CASE("backend ktls on a kernel without the TLS ULP is a clear error, never a fallback") {
  if (host_has_ulp()) {
    MESSAGE("this host has the TLS ULP; the refusal path is covered in the lab only");
    return;
  }
  const int fds_before = open_fd_count();
  {
    Handshake h = handshake(client_policy(TlsVersion::tls13, Cipher::aes_128_gcm),
                            server_policy(TlsVersion::tls13, Cipher::aes_128_gcm), "localhost",
                            options(Backend::ktls), options(Backend::auto_));
    REQUIRE_FALSE(h.client->ok());
    const std::string& msg = h.client->error().message;
    MESSAGE(msg);
    CHECK(msg.find("backend ktls requested but ") == 0);
    CHECK(msg.find(kernel_probe().ulp.reason) != std::string::npos);
  }
  CHECK(open_fd_count() == fds_before);
}

TEST_CASE("WASI_KTLS_BACKEND decides when options come from backend_from_environment") {
  struct Restore {
    ~Restore() { ::unsetenv("WASI_KTLS_BACKEND"); }
  } restore;
  const Policy cp = client_policy(TlsVersion::tls12, Cipher::aes_256_gcm);
  const Policy sp = server_policy(TlsVersion::tls12, Cipher::aes_256_gcm);

  SUBCASE("userspace") {
    ::setenv("WASI_KTLS_BACKEND", "userspace", 1);
    auto b = backend_from_environment();
    REQUIRE(b.ok());
    CHECK(*b == Backend::userspace);
    Handshake h = handshake(cp, sp, "localhost", options(*b), options(*b));
    REQUIRE_MESSAGE(h.client->ok(), message_of(*h.client));
    REQUIRE_MESSAGE(h.server->ok(), message_of(*h.server));
    CHECK((*h.client)->transport() == Transport::userspace);
    CHECK((*h.client)->transport_reason() == "userspace requested");
    CHECK((*h.server)->transport_reason() == "userspace requested");
    transfer(**h.client, **h.server, random_bytes(100000, 7), "client -> server");
  }
  SUBCASE("ktls") {
    ::setenv("WASI_KTLS_BACKEND", "ktls", 1);
    auto b = backend_from_environment();
    REQUIRE(b.ok());
    CHECK(*b == Backend::ktls);
    if (!host_has_ulp()) {
      Handshake h = handshake(cp, sp, "localhost", options(*b), options(Backend::userspace));
      REQUIRE_FALSE(h.client->ok());
      CHECK(h.client->error().message.find("backend ktls requested but") == 0);
    }
  }
  SUBCASE("invalid value") {
    ::setenv("WASI_KTLS_BACKEND", "kernel-please", 1);
    auto b = backend_from_environment();
    REQUIRE_FALSE(b.ok());
    CHECK(b.error().message.find("WASI_KTLS_BACKEND") != std::string::npos);
    CHECK(b.error().message.find("kernel-please") != std::string::npos);
  }
}

TEST_CASE("truncation: a peer that closes TCP without close_notify is an error, not EOF") {
  for (TlsVersion v : kAllVersions) {
    for (bool server_drops : {true, false}) {
      INFO(combo_name(v, Cipher::chacha20_poly1305)
           << (server_drops ? ", server drops the socket" : ", client drops the socket"));
      const int fds_before = open_fd_count();
      {
        Handshake h = handshake(client_policy(v, Cipher::chacha20_poly1305),
                                server_policy(v, Cipher::chacha20_poly1305), "localhost",
                                options(Backend::auto_), options(Backend::auto_));
        REQUIRE_MESSAGE(h.client->ok(), message_of(*h.client));
        REQUIRE_MESSAGE(h.server->ok(), message_of(*h.server));
        transfer(**h.server, **h.client, random_bytes(5000, 3), "server -> client");
        transfer(**h.client, **h.server, random_bytes(5000, 4), "client -> server");
        auto& dropped = server_drops ? h.server : h.client;
        auto& survivor = server_drops ? h.client : h.server;
        dropped.reset();  // closes the fd; no close_notify
        std::uint8_t buf[64];
        auto r = (*survivor)->read(buf);
        REQUIRE_FALSE(r.ok());
        INFO(r.error().message);
        CHECK(r.error().message.find("truncation") != std::string::npos);
      }
      CHECK(open_fd_count() == fds_before);
    }
  }
}

TEST_CASE("certificate failures are explained in words on both sides") {
  for (TlsVersion v : kAllVersions) {
    const Cipher c = Cipher::aes_128_gcm;
    INFO(combo_name(v, c));
    const int fds_before = open_fd_count();
    {
      INFO("wrong hostname");
      Policy sp = server_policy(v, c);
      use_certificate(sp, pki().wronghost_cert, pki().wronghost_key);
      Handshake h = handshake(client_policy(v, c), sp, "localhost");
      REQUIRE_FALSE(h.client->ok());
      REQUIRE_FALSE(h.server->ok());
      MESSAGE("client: " << h.client->error().message);
      MESSAGE("server: " << h.server->error().message);
      CHECK(h.client->error().message.find("hostname mismatch") != std::string::npos);
      CHECK(h.server->error().message.find("alert") != std::string::npos);
      CHECK(h.server->error().message.find("bad_certificate (42)") != std::string::npos);
    }
    {
      INFO("unknown CA");
      Policy cp = client_policy(v, c);
      cp.ca = PemSource::file(pki().other_ca);
      Handshake h = handshake(cp, server_policy(v, c), "localhost");
      REQUIRE_FALSE(h.client->ok());
      REQUIRE_FALSE(h.server->ok());
      MESSAGE("client: " << h.client->error().message);
      MESSAGE("server: " << h.server->error().message);
      CHECK(h.client->error().message.find("unable to get local issuer certificate") !=
            std::string::npos);
      CHECK(h.server->error().message.find("unknown_ca (48)") != std::string::npos);
    }
    {
      INFO("expired certificate");
      Policy sp = server_policy(v, c);
      use_certificate(sp, pki().expired_cert, pki().expired_key);
      Handshake h = handshake(client_policy(v, c), sp, "localhost");
      REQUIRE_FALSE(h.client->ok());
      REQUIRE_FALSE(h.server->ok());
      MESSAGE("client: " << h.client->error().message);
      MESSAGE("server: " << h.server->error().message);
      CHECK(h.client->error().message.find("certificate has expired") != std::string::npos);
      CHECK(h.server->error().message.find("certificate_expired (45)") != std::string::npos);
    }
    {
      INFO("missing required client certificate");
      Policy sp = server_policy(v, c);
      require_client_certificate(sp);
      Handshake h = handshake(client_policy(v, c), sp, "localhost");
      REQUIRE_FALSE(h.server->ok());
      MESSAGE("server: " << h.server->error().message);
      CHECK(h.server->error().message.find("did not return a certificate") != std::string::npos);
      if (v == TlsVersion::tls13) {
        // The TLS 1.3 client finishes before the server has judged it; the verdict arrives
        // as an alert on its first read.
        REQUIRE_MESSAGE(h.client->ok(), message_of(*h.client));
        std::uint8_t buf[16];
        auto r = (*h.client)->read(buf);
        REQUIRE_FALSE(r.ok());
        MESSAGE("client: " << r.error().message);
        CHECK(r.error().message.find("certificate_required (116)") != std::string::npos);
      } else {
        REQUIRE_FALSE(h.client->ok());
        MESSAGE("client: " << h.client->error().message);
        CHECK(h.client->error().message.find("alert") != std::string::npos);
      }
    }
    {
      INFO("required client certificate presented");
      Policy sp = server_policy(v, c);
      require_client_certificate(sp);
      Policy cp = client_policy(v, c);
      present_client_certificate(cp);
      Handshake h = handshake(cp, sp, "localhost");
      REQUIRE_MESSAGE(h.client->ok(), message_of(*h.client));
      REQUIRE_MESSAGE(h.server->ok(), message_of(*h.server));
      CHECK((*h.server)->info().peer_subject.find("wasi-ktls test client") != std::string::npos);
      transfer(**h.client, **h.server, random_bytes(20000, 9), "client -> server");
    }
    CHECK(open_fd_count() == fds_before);
  }
}

TEST_CASE("client data right behind its Finished is not swallowed by the server's handshake") {
  // TLS 1.3: connect() returns once our Finished is out, before the server has read it, so
  // the data written at once can share a segment with the Finished.
  for (TlsVersion v : kAllVersions) {
    const Cipher c = Cipher::aes_256_gcm;
    INFO(combo_name(v, c));
    (void)data_right_behind_finished(client_policy(v, c), server_policy(v, c),
                                     options(Backend::auto_), random_bytes(40000, 21));
  }
}

TEST_CASE("every wait is bounded: a silent peer times out the handshake and reads") {
  SUBCASE("handshake") {
    auto listener = tcp_listen("127.0.0.1", 0);
    REQUIRE(listener.ok());
    auto port = local_port(listener->get());
    REQUIRE(port.ok());
    // The kernel completes the TCP handshake from the backlog; nobody ever answers TLS.
    auto fd = tcp_connect("127.0.0.1", *port, 10s);
    REQUIRE(fd.ok());
    ConnectionOptions o = options(Backend::auto_);
    o.handshake_timeout = 300ms;
    TlsContext cctx = context(Role::client, client_policy(TlsVersion::tls13, Cipher::aes_128_gcm));
    const auto start = std::chrono::steady_clock::now();
    auto client = Connection::connect(std::move(*fd), cctx, "localhost", o);
    const auto took = std::chrono::steady_clock::now() - start;
    REQUIRE_FALSE(client.ok());
    MESSAGE("client: " << client.error().message);
    CHECK(client.error().message.find("timed out") != std::string::npos);
    CHECK(took < 5s);
  }
  SUBCASE("read, and the connection survives it") {
    ConnectionOptions o = options(Backend::auto_);
    o.io_timeout = 300ms;
    Handshake h = handshake(client_policy(TlsVersion::tls12, Cipher::aes_128_gcm),
                            server_policy(TlsVersion::tls12, Cipher::aes_128_gcm), "localhost",
                            o, options(Backend::auto_));
    REQUIRE_MESSAGE(h.client->ok(), message_of(*h.client));
    REQUIRE_MESSAGE(h.server->ok(), message_of(*h.server));
    std::uint8_t buf[64];
    const auto start = std::chrono::steady_clock::now();
    auto r = (*h.client)->read(buf);
    const auto took = std::chrono::steady_clock::now() - start;
    REQUIRE_FALSE(r.ok());
    MESSAGE("client: " << r.error().message);
    CHECK(took < 5s);
    CHECK(r.error().message.find("timed out reading") == 0);
    CHECK(r.error().sys_errno == ETIMEDOUT);
    transfer(**h.server, **h.client, random_bytes(1000, 22), "server -> client after timeout");
  }
}

TEST_CASE("one reader and one writer thread per connection, at once (userspace)") {
  PairExpect expect;
  reader_and_writer_threads(expect, 16u << 20);
}
