// Connection on the host (no kTLS here): our client and our server over loopback TCP. Proves
// the whole path a user sees: handshake, the backend decision and its reason, data both ways
// for every version and cipher at record-boundary sizes and 8 MiB, close_notify, truncation,
// and certificate failures explained in words on both sides.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>

#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ktls/backend.h"
#include "ktls/connection.h"
#include "ktls/probe.h"
#include "ktls/tcp_socket.h"
#include "tests/support/test_pki.h"

using namespace wasi_ktls;
using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;

namespace {

const test::TestPki& pki() {
  static Result<test::TestPki> p = test::make_test_pki();
  REQUIRE_MESSAGE(p.ok(), (p.ok() ? "" : p.error().message));
  return *p;
}

std::string combo_name(TlsVersion v, Cipher c) {
  return "TLS " + std::string(to_string(v)) + " " + std::string(to_string(c));
}

const char* tls13_suite(Cipher c) {
  switch (c) {
    case Cipher::aes_128_gcm: return "TLS_AES_128_GCM_SHA256";
    case Cipher::aes_256_gcm: return "TLS_AES_256_GCM_SHA384";
    case Cipher::chacha20_poly1305: return "TLS_CHACHA20_POLY1305_SHA256";
  }
  return "";
}

const char* tls12_cipher(Cipher c) {
  switch (c) {
    case Cipher::aes_128_gcm: return "ECDHE-ECDSA-AES128-GCM-SHA256";
    case Cipher::aes_256_gcm: return "ECDHE-ECDSA-AES256-GCM-SHA384";
    case Cipher::chacha20_poly1305: return "ECDHE-ECDSA-CHACHA20-POLY1305";
  }
  return "";
}

void pin(Policy& p, TlsVersion v, Cipher c) {
  p.min_version = p.max_version = v;
  p.tls13_suites = tls13_suite(c);
  p.tls12_ciphers = tls12_cipher(c);
}

Policy client_policy(TlsVersion v, Cipher c) {
  Policy p;
  p.ca = PemSource::file(pki().ca);
  pin(p, v, c);
  return p;
}

Policy server_policy(TlsVersion v, Cipher c) {
  Policy p;
  p.certificate_chain = PemSource::file(pki().server_cert);
  p.private_key = PemSource::file(pki().server_key);
  pin(p, v, c);
  return p;
}

TlsContext context(Role role, const Policy& p) {
  auto ctx = TlsContext::create(role, p);
  REQUIRE_MESSAGE(ctx.ok(), (ctx.ok() ? "" : ctx.error().message));
  return *ctx;
}

Bytes random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  Bytes b(n);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  return b;
}

int open_fd_count() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

std::string message_of(const Status& s) { return s.ok() ? "" : s.error().message; }
template <class T>
std::string message_of(const Result<T>& r) {
  return r.ok() ? "" : r.error().message;
}

struct Handshake {
  std::optional<Result<Connection>> client;
  std::optional<Result<Connection>> server;
};

// Our server (Connection::accept on a thread) and our client over loopback.
Handshake handshake(const Policy& cp, const Policy& sp, std::string_view server_name,
                    ConnectionOptions copt = {}, ConnectionOptions sopt = {}) {
  TlsContext cctx = context(Role::client, cp);
  TlsContext sctx = context(Role::server, sp);
  auto listener = tcp_listen("127.0.0.1", 0);
  REQUIRE_MESSAGE(listener.ok(), message_of(listener));
  auto port = local_port(listener->get());
  REQUIRE(port.ok());
  Handshake h;
  std::thread server([&] {
    auto fd = tcp_accept(listener->get(), 10s);
    if (!fd) {
      h.server = fd.error();
      return;
    }
    h.server = Connection::accept(std::move(*fd), sctx, sopt);
  });
  auto fd = tcp_connect("127.0.0.1", *port, 10s);
  if (!fd) {
    h.client = fd.error();
  } else {
    h.client = Connection::connect(std::move(*fd), cctx, server_name, copt);
  }
  server.join();
  return h;
}

// `from` writes all of data while `to` reads exactly that much; both must succeed and match.
void transfer(Connection& from, Connection& to, const Bytes& data, const char* direction) {
  INFO(direction << ", " << data.size() << " bytes");
  Status written;
  std::thread writer([&] { written = from.write(data); });
  Bytes got(data.size());
  auto n = to.read_full(got);
  writer.join();
  REQUIRE_MESSAGE(written.ok(), message_of(written));
  REQUIRE_MESSAGE(n.ok(), message_of(n));
  REQUIRE(*n == data.size());
  CHECK(std::memcmp(got.data(), data.data(), data.size()) == 0);
}

const std::vector<std::size_t> kPayloads = {0, 1, 16383, 16384, 16385, 8u << 20};

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
      const int fds_before = open_fd_count();
      {
        Handshake h = handshake(client_policy(v, c), server_policy(v, c), "localhost",
                                options(Backend::auto_), options(Backend::auto_));
        REQUIRE_MESSAGE(h.client->ok(), message_of(*h.client));
        REQUIRE_MESSAGE(h.server->ok(), message_of(*h.server));
        Connection& client = **h.client;
        Connection& server = **h.server;
        for (Connection* conn : {&client, &server}) {
          CHECK(conn->info().version == v);
          REQUIRE(conn->info().cipher.has_value());
          CHECK(*conn->info().cipher == c);
          if (host_has_ulp()) {
            CHECK(conn->transport() == Transport::kernel);
          } else {
            CHECK(conn->transport() == Transport::userspace);
            // The reason carries the probe's own words for the missing ULP.
            INFO("reason: " << conn->transport_reason());
            if (conn == &client && v == TlsVersion::tls13 && c == Cipher::aes_128_gcm)
              MESSAGE("transport_reason: " << conn->transport_reason());
            CHECK(conn->transport_reason().find(kernel_probe().ulp.reason) != std::string::npos);
            CHECK(conn->transport_reason().find("TLS ULP") != std::string::npos);
            CHECK(conn->transport_reason().find(name.substr(4)) != std::string::npos);
          }
        }
        CHECK(client.info().peer_subject.find("CN=localhost") != std::string::npos);

        std::uint64_t seed = 1;
        std::uint64_t total = 0;
        for (std::size_t n : kPayloads) {
          transfer(client, server, random_bytes(n, seed++), "client -> server");
          transfer(server, client, random_bytes(n, seed++), "server -> client");
          total += n;
        }
        CHECK(client.bytes_written() == total);
        CHECK(client.bytes_read() == total);
        CHECK(server.bytes_written() == total);
        CHECK(server.bytes_read() == total);

        // close_notify both ways: the client ends, the server sees a clean end and answers.
        Status closed = client.close();
        REQUIRE_MESSAGE(closed.ok(), message_of(closed));
        CHECK(client.close().ok());  // idempotent
        std::uint8_t buf[64];
        auto r = server.read(buf);
        REQUIRE_MESSAGE(r.ok(), message_of(r));
        CHECK(*r == 0);
        closed = server.close();
        REQUIRE_MESSAGE(closed.ok(), message_of(closed));
        r = client.read(buf);
        REQUIRE_MESSAGE(r.ok(), message_of(r));
        CHECK(*r == 0);
        // Writing after our own close_notify is refused, not silently dropped.
        CHECK_FALSE(client.write("late").ok());
      }
      CHECK(open_fd_count() == fds_before);
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
      sp.certificate_chain = PemSource::file(pki().wronghost_cert);
      sp.private_key = PemSource::file(pki().wronghost_key);
      Handshake h = handshake(client_policy(v, c), sp, "localhost");
      REQUIRE_FALSE(h.client->ok());
      REQUIRE_FALSE(h.server->ok());
      MESSAGE("client: " << h.client->error().message);
      MESSAGE("server: " << h.server->error().message);
      CHECK(h.client->error().message.find("hostname mismatch") != std::string::npos);
      CHECK(h.server->error().message.find("alert") != std::string::npos);
      CHECK(h.server->error().message.find("bad certificate") != std::string::npos);
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
      CHECK(h.server->error().message.find("unknown ca") != std::string::npos);
    }
    {
      INFO("expired certificate");
      Policy sp = server_policy(v, c);
      sp.certificate_chain = PemSource::file(pki().expired_cert);
      sp.private_key = PemSource::file(pki().expired_key);
      Handshake h = handshake(client_policy(v, c), sp, "localhost");
      REQUIRE_FALSE(h.client->ok());
      REQUIRE_FALSE(h.server->ok());
      MESSAGE("client: " << h.client->error().message);
      MESSAGE("server: " << h.server->error().message);
      CHECK(h.client->error().message.find("certificate has expired") != std::string::npos);
      CHECK(h.server->error().message.find("certificate expired") != std::string::npos);
    }
    {
      INFO("missing required client certificate");
      Policy sp = server_policy(v, c);
      sp.ca = PemSource::file(pki().ca);
      sp.client_auth = ClientAuth::required;
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
        CHECK(r.error().message.find("certificate required") != std::string::npos);
      } else {
        REQUIRE_FALSE(h.client->ok());
        MESSAGE("client: " << h.client->error().message);
        CHECK(h.client->error().message.find("alert") != std::string::npos);
      }
    }
    {
      INFO("required client certificate presented");
      Policy sp = server_policy(v, c);
      sp.ca = PemSource::file(pki().ca);
      sp.client_auth = ClientAuth::required;
      Policy cp = client_policy(v, c);
      cp.certificate_chain = PemSource::file(pki().client_cert);
      cp.private_key = PemSource::file(pki().client_key);
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
    TlsContext cctx = context(Role::client, client_policy(v, c));
    TlsContext sctx = context(Role::server, server_policy(v, c));
    auto listener = tcp_listen("127.0.0.1", 0);
    REQUIRE(listener.ok());
    auto port = local_port(listener->get());
    REQUIRE(port.ok());
    const Bytes data = random_bytes(40000, 21);
    std::optional<Result<Connection>> server;
    Result<std::size_t> got_n = std::size_t{0};
    Bytes got(data.size());
    std::thread t([&] {
      auto fd = tcp_accept(listener->get(), 10s);
      if (!fd) {
        server = fd.error();
        return;
      }
      server = Connection::accept(std::move(*fd), sctx, options(Backend::auto_));
      if (server->ok()) got_n = (*server)->read_full(got);
    });
    auto fd = tcp_connect("127.0.0.1", *port, 10s);
    REQUIRE(fd.ok());
    auto client = Connection::connect(std::move(*fd), cctx, "localhost", options(Backend::auto_));
    Status written = client ? client->write(data) : Status(client.error());
    t.join();
    REQUIRE_MESSAGE(client.ok(), message_of(client));
    REQUIRE_MESSAGE(written.ok(), message_of(written));
    REQUIRE_MESSAGE(server->ok(), message_of(*server));
    REQUIRE_MESSAGE(got_n.ok(), message_of(got_n));
    CHECK(*got_n == data.size());
    CHECK(got == data);
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
