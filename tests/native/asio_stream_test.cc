// The Boost.Asio stream on the host (no kTLS here, so auto picks userspace and says why): our
// client <-> our server and against openssl s_server / s_client, TLS 1.2 and 1.3 x three AEADs,
// record-boundary payloads and 8 MiB both ways, in coroutine (co_await use_awaitable) and
// callback style, through async_read/async_write; close_notify -> eof, truncation ->
// stream_truncated, certificate failures readable in last_error().
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <signal.h>
#include <stdlib.h>

#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "ktls/asio/stream.h"
#include "ktls/backend.h"
#include "ktls/probe.h"
#include "tests/support/child_process.h"
#include "tests/support/test_pki.h"

using namespace wasi_ktls;
using namespace std::chrono_literals;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Bytes = std::vector<std::uint8_t>;
using boost::system::error_code;
using wasi_ktls::asio::Stream;
using wasi_ktls::asio::StreamOptions;
using test::ChildProcess;

namespace {

const bool kIgnoreSigpipe = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

constexpr auto kTimeout = 60s;

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

std::vector<std::string> openssl_pin(TlsVersion v, Cipher c) {
  if (v == TlsVersion::tls13) return {"-tls1_3", "-ciphersuites", tls13_suite(c)};
  return {"-tls1_2", "-cipher", tls12_cipher(c)};
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

std::string_view as_text(const Bytes& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

StreamOptions opts(Backend b, std::string server_name = "") {
  StreamOptions o;
  o.backend = b;
  o.server_name = std::move(server_name);
  return o;
}

bool host_has_ulp() { return kernel_probe().ulp.ok; }

// Runs the io_context until it has no more work, bounded.
void run(net::io_context& io) {
  io.restart();
  io.run_for(kTimeout);
  REQUIRE_MESSAGE(io.stopped(), "an operation did not finish in time");
}

// ---- our client <-> our server -------------------------------------------------------------

struct Pair {
  std::unique_ptr<Stream> client, server;
  error_code client_ec, server_ec;
};

// Both handshakes as coroutines over loopback.
Pair our_pair(net::io_context& io, const Policy& cp, const Policy& sp, StreamOptions copt,
              StreamOptions sopt) {
  TlsContext cctx = context(Role::client, cp);
  TlsContext sctx = context(Role::server, sp);
  tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  const auto endpoint = acceptor.local_endpoint();
  Pair p;
  p.client = std::make_unique<Stream>(io, cctx, copt);
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        error_code ec;
        tcp::socket sock = co_await acceptor.async_accept(net::redirect_error(net::use_awaitable, ec));
        if (ec) {
          p.server_ec = ec;
          co_return;
        }
        p.server = std::make_unique<Stream>(std::move(sock), sctx, sopt);
        co_await p.server->async_handshake(Stream::server,
                                           net::redirect_error(net::use_awaitable, p.server_ec));
      },
      net::detached);
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        error_code ec;
        co_await p.client->next_layer().async_connect(endpoint,
                                                       net::redirect_error(net::use_awaitable, ec));
        if (ec) {
          p.client_ec = ec;
          co_return;
        }
        co_await p.client->async_handshake(Stream::client,
                                           net::redirect_error(net::use_awaitable, p.client_ec));
      },
      net::detached);
  run(io);
  return p;
}

// `from` writes all of data (async_write) while `to` reads exactly that much (async_read),
// both as coroutines.
void transfer(net::io_context& io, Stream& from, Stream& to, const Bytes& data) {
  INFO(data.size() << " bytes");
  error_code wec, rec;
  std::size_t wn = 0, rn = 0;
  Bytes got(data.size());
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        wn = co_await net::async_write(from, net::buffer(data),
                                       net::redirect_error(net::use_awaitable, wec));
      },
      net::detached);
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        rn = co_await net::async_read(to, net::buffer(got),
                                      net::redirect_error(net::use_awaitable, rec));
      },
      net::detached);
  run(io);
  REQUIRE_MESSAGE(!wec, wec.message() << ": " << from.last_error());
  REQUIRE_MESSAGE(!rec, rec.message() << ": " << to.last_error());
  CHECK(wn == data.size());
  REQUIRE(rn == data.size());
  CHECK(std::memcmp(got.data(), data.data(), data.size()) == 0);
}

// One read_some; its error and byte count.
std::pair<error_code, std::size_t> read_once(net::io_context& io, Stream& s) {
  std::pair<error_code, std::size_t> r{net::error::would_block, 0};
  static std::uint8_t buf[256];
  s.async_read_some(net::buffer(buf), [&](error_code ec, std::size_t n) { r = {ec, n}; });
  run(io);
  return r;
}

error_code shutdown(net::io_context& io, Stream& s) {
  error_code r = net::error::would_block;
  s.async_shutdown([&](error_code ec) { r = ec; });
  run(io);
  return r;
}

const std::vector<std::size_t> kPayloads = {0, 1, 16383, 16384, 16385, 8u << 20};

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

// ---- openssl peers -------------------------------------------------------------------------

struct Peer {
  std::optional<ChildProcess> proc;
  std::string log;
  std::size_t consumed = 0;

  std::string stderr_text() const {
    std::ifstream f(log);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
};

Peer spawn_openssl(const std::vector<std::string>& args, const std::string& name) {
  static int counter = 0;
  Peer p;
  p.log = "/tmp/asio_stream_test_" + name + "_" + std::to_string(::getpid()) + "_" +
          std::to_string(++counter) + ".stderr";
  std::vector<std::string> argv = {"sh", "-c", "exec openssl \"$@\" 2>'" + p.log + "'", "sh"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto c = ChildProcess::spawn(argv, /*inherit_stderr=*/true);
  REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().message));
  p.proc.emplace(std::move(*c));
  return p;
}

Status feed_stdin(Peer& peer, std::string_view data) {
  auto deadline = std::chrono::steady_clock::now() + kTimeout;
  while (!data.empty()) {
    auto chunk = data.substr(0, 4096);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return make_error("timed out feeding the peer's stdin");
    if (Status s = peer.proc->write_stdin(chunk, left); !s) return s;
    data.remove_prefix(chunk.size());
  }
  return {};
}

// We write `data` (io on a thread); the peer must print exactly it.
void send_to_peer(net::io_context& io, Stream& s, Peer& peer, const Bytes& data) {
  INFO(data.size() << " bytes to the peer");
  error_code wec = net::error::would_block;
  net::async_write(s, net::buffer(data), [&](error_code ec, std::size_t) { wec = ec; });
  std::thread t([&] {
    io.restart();
    io.run_for(kTimeout);
  });
  const std::size_t want = peer.consumed + data.size();
  Status st = peer.proc->read_until([want](const std::string& o) { return o.size() >= want; },
                                    kTimeout);
  t.join();
  INFO("peer stderr: " << peer.stderr_text());
  REQUIRE_MESSAGE(st.ok(), (st.ok() ? "" : st.error().message));
  REQUIRE_MESSAGE(!wec, wec.message() << ": " << s.last_error());
  const std::string& out = peer.proc->output();
  REQUIRE(out.size() == want);
  CHECK(std::memcmp(out.data() + peer.consumed, data.data(), data.size()) == 0);
  peer.consumed = want;
}

// The peer gets `data` on stdin and sends it; we must read exactly it (async_read).
void receive_from_peer(net::io_context& io, Stream& s, Peer& peer, const Bytes& data) {
  INFO(data.size() << " bytes from the peer");
  error_code rec = net::error::would_block;
  std::size_t rn = 0;
  Bytes got(data.size());
  net::async_read(s, net::buffer(got), [&](error_code ec, std::size_t n) {
    rec = ec;
    rn = n;
  });
  std::thread t([&] {
    io.restart();
    io.run_for(kTimeout);
  });
  Status fed = feed_stdin(peer, as_text(data));
  t.join();
  INFO("peer stderr: " << peer.stderr_text());
  REQUIRE_MESSAGE(fed.ok(), (fed.ok() ? "" : fed.error().message));
  REQUIRE_MESSAGE(!rec, rec.message() << ": " << s.last_error());
  REQUIRE(rn == data.size());
  CHECK(std::memcmp(got.data(), data.data(), data.size()) == 0);
}

// True once a socket listens on `port` (from /proc/net/tcp: probing with a connection would
// use up s_server's only accept).
bool listening(int port) {
  char want[8];
  std::snprintf(want, sizeof want, ":%04X", port);
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream f(path);
    std::string line;
    while (std::getline(f, line)) {
      std::istringstream ls(line);
      std::string sl, local, remote, state;
      ls >> sl >> local >> remote >> state;
      if (state == "0A" && local.size() > 5 && local.substr(local.size() - 5) == want) return true;
    }
  }
  return false;
}

Peer start_s_server(int port, const std::vector<std::string>& extra,
                    const std::string& cert = "", const std::string& key = "") {
  std::vector<std::string> args = {"s_server", "-accept", "127.0.0.1:" + std::to_string(port),
                                   "-cert", cert.empty() ? pki().server_cert : cert,
                                   "-key", key.empty() ? pki().server_key : key,
                                   "-naccept", "1", "-quiet"};
  args.insert(args.end(), extra.begin(), extra.end());
  Peer p = spawn_openssl(args, "s_server");
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!listening(port)) {
    INFO("s_server stderr: " << p.stderr_text());
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(20ms);
  }
  return p;
}

int port_or_fail() {
  auto p = test::free_port();
  REQUIRE(p.ok());
  return *p;
}

// Our client stream connected (plain TCP) to 127.0.0.1:port, handshaken.
std::pair<std::unique_ptr<Stream>, error_code> connect_to(net::io_context& io, int port,
                                                           const Policy& cp, StreamOptions o) {
  auto s = std::make_unique<Stream>(io, context(Role::client, cp), std::move(o));
  error_code ec = net::error::would_block;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        co_await s->next_layer().async_connect(
            tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)),
            net::redirect_error(net::use_awaitable, ec));
        if (ec) co_return;
        co_await s->async_handshake(Stream::client, net::redirect_error(net::use_awaitable, ec));
      },
      net::detached);
  run(io);
  return {std::move(s), ec};
}

}  // namespace

TEST_CASE("our client <-> our server (coroutines): every version and cipher, payloads, close") {
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      const std::string name = combo_name(v, c);
      INFO(name);
      net::io_context io;
      Pair p = our_pair(io, client_policy(v, c), server_policy(v, c),
                        opts(Backend::auto_, "localhost"), opts(Backend::auto_));
      REQUIRE_MESSAGE(!p.client_ec, p.client_ec.message() << ": " << p.client->last_error());
      REQUIRE(p.server);
      REQUIRE_MESSAGE(!p.server_ec, p.server_ec.message() << ": " << p.server->last_error());
      Stream& client = *p.client;
      Stream& server = *p.server;
      for (Stream* s : {&client, &server}) {
        CHECK(s->info().version == v);
        CHECK(s->info().cipher == c);
        check_transport(*s, name);
      }
      if (v == TlsVersion::tls13 && c == Cipher::aes_128_gcm)
        MESSAGE("transport " << to_string(client.transport()) << ", reason: "
                             << client.transport_reason());
      CHECK(client.info().peer_subject.find("CN=localhost") != std::string::npos);

      std::uint64_t seed = 1, total = 0;
      for (std::size_t n : kPayloads) {
        transfer(io, client, server, random_bytes(n, seed++));
        transfer(io, server, client, random_bytes(n, seed++));
        total += n;
      }
      CHECK(client.bytes_written() == total);
      CHECK(client.bytes_read() == total);
      CHECK(server.bytes_written() == total);
      CHECK(server.bytes_read() == total);

      // close_notify: the client ends, the server reads eof and answers, the client reads eof.
      error_code ec = shutdown(io, client);
      REQUIRE_MESSAGE(!ec, ec.message() << ": " << client.last_error());
      CHECK(!shutdown(io, client));  // idempotent
      auto r = read_once(io, server);
      CHECK(r.first == net::error::eof);
      CHECK(r.second == 0);
      CHECK(!shutdown(io, server));
      r = read_once(io, client);
      CHECK(r.first == net::error::eof);
      CHECK(read_once(io, client).first == net::error::eof);  // stays at eof
      // Writing after our own close_notify is refused, not dropped.
      error_code wec;
      client.async_write_some(net::buffer("late", 4), [&](error_code e, std::size_t) { wec = e; });
      run(io);
      CHECK(wec == wasi_ktls::asio::errc::shut_down);
      CHECK(wec.category().name() == std::string("wasi_ktls"));
      CHECK(client.last_error().find("close_notify") != std::string::npos);
    }
  }
}

TEST_CASE("callback style: handshake, async_write/async_read chains, shutdown") {
  const TlsVersion v = TlsVersion::tls12;
  const Cipher c = Cipher::chacha20_poly1305;
  net::io_context io;
  TlsContext cctx = context(Role::client, client_policy(v, c));
  TlsContext sctx = context(Role::server, server_policy(v, c));
  tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  Stream client(io, cctx, opts(Backend::auto_));
  client.set_server_name("localhost");
  std::unique_ptr<Stream> server;
  const Bytes up = random_bytes(100000, 11), down = random_bytes(70000, 12);
  Bytes server_got(up.size()), client_got(down.size());
  std::vector<std::string> events;

  acceptor.async_accept([&](error_code ec, tcp::socket sock) {
    REQUIRE(!ec);
    server = std::make_unique<Stream>(std::move(sock), sctx, opts(Backend::auto_));
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
            REQUIRE_MESSAGE(!ec, client.last_error());
            static std::uint8_t b[16];
            server->async_read_some(net::buffer(b), [&](error_code ec, std::size_t) {
              CHECK(ec == net::error::eof);
              events.push_back("server eof");
            });
          });
        });
      });
    });
  });
  run(io);
  CHECK(events.size() == 6);
  CHECK(server_got == up);
  CHECK(client_got == down);
}

TEST_CASE("our client <-> openssl s_server: every version and cipher, payloads, close") {
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      const std::string name = combo_name(v, c);
      INFO(name);
      net::io_context io;
      const int port = port_or_fail();
      Peer peer = start_s_server(port, openssl_pin(v, c));
      auto [client, ec] = connect_to(io, port, client_policy(v, c), opts(Backend::auto_, "localhost"));
      INFO("s_server stderr: " << peer.stderr_text());
      REQUIRE_MESSAGE(!ec, ec.message() << ": " << client->last_error());
      check_transport(*client, name);
      CHECK(client->info().cipher == c);
      std::uint64_t seed = 100;
      for (std::size_t n : kPayloads) {
        send_to_peer(io, *client, peer, random_bytes(n, seed++));
        receive_from_peer(io, *client, peer, random_bytes(n, seed++));
      }
      ec = shutdown(io, *client);
      REQUIRE_MESSAGE(!ec, client->last_error());
      auto r = read_once(io, *client);  // s_server answers close_notify with its own
      CHECK(r.first == net::error::eof);
      auto status = peer.proc->wait(kTimeout);
      REQUIRE(status.ok());
      CHECK(*status == 0);
    }
  }
}

TEST_CASE("openssl s_client <-> our server: every version and cipher, payloads, close") {
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      const std::string name = combo_name(v, c);
      INFO(name);
      net::io_context io;
      tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
      std::vector<std::string> args = {"s_client", "-connect",
                                       "127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()),
                                       "-CAfile", pki().ca, "-servername", "localhost",
                                       "-verify_return_error", "-quiet"};
      for (auto& a : openssl_pin(v, c)) args.push_back(a);
      Peer peer = spawn_openssl(args, "s_client");
      std::unique_ptr<Stream> server;
      error_code ec = net::error::would_block;
      TlsContext sctx = context(Role::server, server_policy(v, c));
      net::co_spawn(
          io,
          [&]() -> net::awaitable<void> {
            tcp::socket sock =
                co_await acceptor.async_accept(net::redirect_error(net::use_awaitable, ec));
            if (ec) co_return;
            server = std::make_unique<Stream>(std::move(sock), sctx, opts(Backend::auto_));
            co_await server->async_handshake(Stream::server,
                                             net::redirect_error(net::use_awaitable, ec));
          },
          net::detached);
      run(io);
      INFO("s_client stderr: " << peer.stderr_text());
      REQUIRE(server);
      REQUIRE_MESSAGE(!ec, ec.message() << ": " << server->last_error());
      check_transport(*server, name);
      std::uint64_t seed = 200;
      for (std::size_t n : kPayloads) {
        receive_from_peer(io, *server, peer, random_bytes(n, seed++));
        send_to_peer(io, *server, peer, random_bytes(n, seed++));
      }
      ec = shutdown(io, *server);
      REQUIRE_MESSAGE(!ec, server->last_error());
      auto r = read_once(io, *server);  // s_client answers close_notify with its own
      CHECK(r.first == net::error::eof);
      auto status = peer.proc->wait(kTimeout);
      REQUIRE(status.ok());
      CHECK(*status == 0);
    }
  }
}

TEST_CASE("truncation: TCP FIN without close_notify is stream_truncated, not eof") {
  for (TlsVersion v : kAllVersions) {
    for (bool server_drops : {true, false}) {
      INFO(to_string(v) << (server_drops ? " server drops" : " client drops"));
      net::io_context io;
      Pair p = our_pair(io, client_policy(v, Cipher::aes_256_gcm),
                        server_policy(v, Cipher::aes_256_gcm), opts(Backend::auto_, "localhost"),
                        opts(Backend::auto_));
      REQUIRE(!p.client_ec);
      REQUIRE(!p.server_ec);
      transfer(io, *p.server, *p.client, random_bytes(5000, 3));
      transfer(io, *p.client, *p.server, random_bytes(5000, 4));
      Stream& dropped = server_drops ? *p.server : *p.client;
      Stream& survivor = server_drops ? *p.client : *p.server;
      dropped.next_layer().close();
      auto r = read_once(io, survivor);
      CHECK(r.first == net::ssl::error::stream_truncated);
      MESSAGE(r.first.message() << ": " << survivor.last_error());
      CHECK(survivor.last_error().find("truncation") != std::string::npos);
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
      sp.certificate_chain = PemSource::file(pki().wronghost_cert);
      sp.private_key = PemSource::file(pki().wronghost_key);
      Pair p = our_pair(io, client_policy(v, c), sp, opts(Backend::auto_, "localhost"),
                        opts(Backend::auto_));
      CHECK(p.client_ec == wasi_ktls::asio::errc::handshake_failed);
      MESSAGE("client: " << p.client_ec.message() << ": " << p.client->last_error());
      CHECK(p.client->last_error().find("hostname mismatch") != std::string::npos);
      REQUIRE(p.server);
      CHECK(p.server_ec == wasi_ktls::asio::errc::handshake_failed);
      MESSAGE("server: " << p.server->last_error());
      CHECK(p.server->last_error().find("bad certificate") != std::string::npos);
      // The failed stream refuses data, saying why.
      auto r = read_once(io, *p.client);
      CHECK(r.first == wasi_ktls::asio::errc::not_established);
    }
    {
      INFO("s_server from a CA we don't trust");
      net::io_context io;
      const int port = port_or_fail();
      Peer peer = start_s_server(port, openssl_pin(v, c));
      Policy cp = client_policy(v, c);
      cp.ca = PemSource::file(pki().other_ca);
      auto [client, ec] = connect_to(io, port, cp, opts(Backend::auto_, "localhost"));
      CHECK(ec == wasi_ktls::asio::errc::handshake_failed);
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
    Pair p = our_pair(io, client_policy(v, c), server_policy(v, c),
                      opts(Backend::ktls, "localhost"), opts(Backend::auto_));
    CHECK(p.client_ec == wasi_ktls::asio::errc::backend_unavailable);
    MESSAGE(p.client->last_error());
    CHECK(p.client->last_error().find("backend ktls requested but") == 0);
    CHECK(p.client->last_error().find(kernel_probe().ulp.reason) != std::string::npos);
  }
  {
    ::setenv("WASI_KTLS_BACKEND", "userspace", 1);
    net::io_context io;
    StreamOptions env;  // backend unset: from the environment
    env.server_name = "localhost";
    Pair p = our_pair(io, client_policy(v, c), server_policy(v, c), env, StreamOptions{});
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
    StreamOptions env;
    env.server_name = "localhost";
    Stream s(io, context(Role::client, client_policy(v, c)), env);
    error_code ec;
    s.async_handshake(Stream::client, [&](error_code e) { ec = e; });
    run(io);
    CHECK(ec == wasi_ktls::asio::errc::backend_unavailable);
    CHECK(s.last_error().find("kernel-please") != std::string::npos);
  }
  {
    INFO("a server handshake with a client context is refused");
    net::io_context io;
    Stream s(io, context(Role::client, client_policy(v, c)), opts(Backend::auto_));
    error_code ec;
    s.async_handshake(Stream::server, [&](error_code e) { ec = e; });
    run(io);
    CHECK(ec == wasi_ktls::asio::errc::wrong_role);
  }
}
