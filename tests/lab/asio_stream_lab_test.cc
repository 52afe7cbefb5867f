// The Boost.Asio stream on a kTLS kernel (run in tools/kernel-lab as root): our client <-> our
// server and against openssl s_server / s_client, TLS 1.2 and 1.3 x three AEADs, record-boundary
// payloads and 8 MiB both ways, with transport() == kernel proven by /proc/net/tls_stat (our
// open kTLS sockets) and the kernel's record sequence numbers (getsockopt TLS_TX/TLS_RX), which
// move with what we send and receive; s_server's TLS 1.3 tickets consumed on the way; close_notify
// -> eof, truncation -> stream_truncated; and tools/asio-echo-server serving over kTLS.
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
#include "ktls/install.h"
#include "ktls/probe.h"
#include "ktls/tls_stat.h"
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
  p.log = "/tmp/asio_stream_lab_" + name + "_" + std::to_string(::getpid()) + "_" +
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

// ---- kernel evidence -----------------------------------------------------------------------

constexpr std::size_t kRecord = 16384;
std::uint64_t records(std::size_t n) { return (n + kRecord - 1) / kRecord; }

struct Counters {
  std::uint64_t tx_sw = 0, rx_sw = 0, decrypt_errors = 0;
};

Counters tls_counters() {
  auto st = read_tls_stat();
  REQUIRE_MESSAGE(st.ok(), (st.ok() ? "" : st.error().message));
  Counters c;
  c.tx_sw = st->get("TlsCurrTxSw").value_or(~0ull);
  c.rx_sw = st->get("TlsCurrRxSw").value_or(~0ull);
  c.decrypt_errors = st->get("TlsDecryptError").value_or(~0ull);
  return c;
}

std::uint64_t kernel_seq(Stream& s, Direction d) {
  auto info = read_kernel_crypto_info(s.next_layer().native_handle(), d);
  REQUIRE_MESSAGE(info.ok(), (info.ok() ? "" : info.error().message));
  return info->rec_seq();
}

void require_kernel(const Stream& s) {
  INFO("transport_reason: " << s.transport_reason());
  REQUIRE(s.transport() == Transport::kernel);
  CHECK(s.transport_reason().empty());
}

// One direction's record number moved by the records `n` bytes need: exactly one per 16 KiB
// when one send carried them, more when a non-blocking send was cut short mid-record or the
// peer (OpenSSL) framed them its own way; never more than one per byte. `extra` are control
// records known to come first (tickets).
void check_moved(Stream& s, Direction d, std::uint64_t& seq, std::size_t n, std::uint64_t extra,
                 const char* what) {
  const std::uint64_t now = kernel_seq(s, d);
  INFO(what << ": rec_seq " << now << ", before " << seq << ", bytes " << n);
  CHECK(now >= seq + extra + records(n));
  CHECK(now <= seq + extra + n);
  seq = now;
}

StreamOptions kernel_only(std::string server_name = "") {
  return opts(Backend::ktls, std::move(server_name));
}

struct Timer {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
};

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
      Timer t;
      const Counters before = tls_counters();
      {
        net::io_context io;
        Pair p = our_pair(io, client_policy(v, c), server_policy(v, c), kernel_only("localhost"),
                          kernel_only());
        REQUIRE_MESSAGE(!p.client_ec, p.client_ec.message() << ": " << p.client->last_error());
        REQUIRE(p.server);
        REQUIRE_MESSAGE(!p.server_ec, p.server_ec.message() << ": " << p.server->last_error());
        Stream& client = *p.client;
        Stream& server = *p.server;
        require_kernel(client);
        require_kernel(server);
        CHECK(client.info().cipher == c);
        const Counters open = tls_counters();
        CHECK(open.tx_sw - before.tx_sw == 2);
        CHECK(open.rx_sw - before.rx_sw == 2);

        // TLS 1.2: Finished was record 0 both ways. TLS 1.3: the server's TX starts after its 2
        // tickets, which the client meets (as control records) on its first read.
        std::uint64_t ctx_seq = v == TlsVersion::tls12 ? 1 : 0, crx = ctx_seq;
        std::uint64_t stx = v == TlsVersion::tls12 ? 1 : 2, srx = ctx_seq;
        CHECK(kernel_seq(client, Direction::tx) == ctx_seq);
        CHECK(kernel_seq(client, Direction::rx) == crx);
        CHECK(kernel_seq(server, Direction::tx) == stx);
        CHECK(kernel_seq(server, Direction::rx) == srx);
        std::uint64_t tickets = v == TlsVersion::tls13 ? 2 : 0;
        std::uint64_t seed = 1;
        for (std::size_t n : kPayloads) {
          transfer(io, client, server, random_bytes(n, seed++));
          check_moved(client, Direction::tx, ctx_seq, n, 0, "client tx");
          check_moved(server, Direction::rx, srx, n, 0, "server rx");
          transfer(io, server, client, random_bytes(n, seed++));
          check_moved(server, Direction::tx, stx, n, 0, "server tx");
          check_moved(client, Direction::rx, crx, n, n > 0 ? tickets : 0, "client rx");
          if (n > 0) tickets = 0;
        }
        // close_notify both ways, one alert record each.
        REQUIRE(!shutdown(io, client));
        auto r = read_once(io, server);
        CHECK(r.first == net::error::eof);
        REQUIRE(!shutdown(io, server));
        r = read_once(io, client);
        CHECK(r.first == net::error::eof);
        CHECK(kernel_seq(client, Direction::tx) == ctx_seq + 1);
        CHECK(kernel_seq(server, Direction::rx) == srx + 1);
        CHECK(kernel_seq(server, Direction::tx) == stx + 1);
        CHECK(kernel_seq(client, Direction::rx) == crx + 1);
      }
      const Counters after = tls_counters();
      CHECK(after.tx_sw == before.tx_sw);
      CHECK(after.rx_sw == before.rx_sw);
      CHECK(after.decrypt_errors == before.decrypt_errors);
      MESSAGE(name << " our client <-> our server: " << t.seconds() << " s");
    }
  }
}

TEST_CASE("callback style on kTLS: async_write/async_read chains and shutdown") {
  const TlsVersion v = TlsVersion::tls13;
  const Cipher c = Cipher::chacha20_poly1305;
  net::io_context io;
  Pair p = our_pair(io, client_policy(v, c), server_policy(v, c), kernel_only("localhost"),
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
      p.server->async_shutdown([&](error_code ec) {
        REQUIRE(!ec);
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
    });
  });
  run(io);
  CHECK(steps == 6);
  CHECK(sgot == up);
  CHECK(cgot == down);
}

TEST_CASE("our client (kTLS) <-> openssl s_server: tickets consumed, payloads, close") {
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      const std::string name = combo_name(v, c);
      INFO(name);
      Timer t;
      const Counters before = tls_counters();
      {
        net::io_context io;
        const int port = port_or_fail();
        Peer peer = start_s_server(port, openssl_pin(v, c));
        auto [client, ec] = connect_to(io, port, client_policy(v, c), kernel_only("localhost"));
        INFO("s_server stderr: " << peer.stderr_text());
        REQUIRE_MESSAGE(!ec, ec.message() << ": " << client->last_error());
        require_kernel(*client);
        const Counters open = tls_counters();
        CHECK(open.tx_sw - before.tx_sw == 1);
        CHECK(open.rx_sw - before.rx_sw == 1);
        std::uint64_t tx = v == TlsVersion::tls12 ? 1 : 0, rx = tx;
        std::uint64_t tickets = v == TlsVersion::tls13 ? 2 : 0;  // s_server's default
        std::uint64_t seed = 100;
        for (std::size_t n : kPayloads) {
          send_to_peer(io, *client, peer, random_bytes(n, seed++));
          check_moved(*client, Direction::tx, tx, n, 0, "client tx");
          receive_from_peer(io, *client, peer, random_bytes(n, seed++));
          check_moved(*client, Direction::rx, rx, n, n > 0 ? tickets : 0, "client rx");
          if (n > 0) tickets = 0;
        }
        REQUIRE(!shutdown(io, *client));
        auto r = read_once(io, *client);  // s_server answers close_notify with its own
        CHECK(r.first == net::error::eof);
        CHECK(kernel_seq(*client, Direction::tx) == tx + 1);
        CHECK(kernel_seq(*client, Direction::rx) == rx + 1);
        auto status = peer.proc->wait(kTimeout);
        REQUIRE(status.ok());
        CHECK(*status == 0);
      }
      const Counters after = tls_counters();
      CHECK(after.tx_sw == before.tx_sw);
      CHECK(after.decrypt_errors == before.decrypt_errors);
      MESSAGE(name << " our client <-> s_server: " << t.seconds() << " s");
    }
  }
}

TEST_CASE("openssl s_client <-> our server (kTLS): payloads, close") {
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      const std::string name = combo_name(v, c);
      INFO(name);
      Timer t;
      const Counters before = tls_counters();
      {
        net::io_context io;
        tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
        std::vector<std::string> args = {
            "s_client", "-connect", "127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()),
            "-CAfile", pki().ca, "-servername", "localhost", "-verify_return_error", "-quiet"};
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
              server = std::make_unique<Stream>(std::move(sock), sctx, kernel_only());
              co_await server->async_handshake(Stream::server,
                                               net::redirect_error(net::use_awaitable, ec));
            },
            net::detached);
        run(io);
        INFO("s_client stderr: " << peer.stderr_text());
        REQUIRE(server);
        REQUIRE_MESSAGE(!ec, ec.message() << ": " << server->last_error());
        require_kernel(*server);
        std::uint64_t tx = v == TlsVersion::tls12 ? 1 : 2, rx = v == TlsVersion::tls12 ? 1 : 0;
        CHECK(kernel_seq(*server, Direction::tx) == tx);
        std::uint64_t seed = 200;
        for (std::size_t n : kPayloads) {
          receive_from_peer(io, *server, peer, random_bytes(n, seed++));
          check_moved(*server, Direction::rx, rx, n, 0, "server rx");
          send_to_peer(io, *server, peer, random_bytes(n, seed++));
          check_moved(*server, Direction::tx, tx, n, 0, "server tx");
        }
        REQUIRE(!shutdown(io, *server));
        auto r = read_once(io, *server);
        CHECK(r.first == net::error::eof);
        auto status = peer.proc->wait(kTimeout);
        REQUIRE(status.ok());
        CHECK(*status == 0);
      }
      const Counters after = tls_counters();
      CHECK(after.rx_sw == before.rx_sw);
      CHECK(after.decrypt_errors == before.decrypt_errors);
      MESSAGE(name << " s_client <-> our server: " << t.seconds() << " s");
    }
  }
}

TEST_CASE("truncation on kTLS: TCP FIN without close_notify is stream_truncated") {
  for (TlsVersion v : kAllVersions) {
    INFO(to_string(v));
    net::io_context io;
    Pair p = our_pair(io, client_policy(v, Cipher::aes_256_gcm),
                      server_policy(v, Cipher::aes_256_gcm), kernel_only("localhost"),
                      kernel_only());
    REQUIRE(!p.client_ec);
    REQUIRE(!p.server_ec);
    require_kernel(*p.client);
    transfer(io, *p.server, *p.client, random_bytes(5000, 3));
    transfer(io, *p.client, *p.server, random_bytes(5000, 4));
    p.server->next_layer().close();
    auto r = read_once(io, *p.client);
    CHECK(r.first == net::ssl::error::stream_truncated);
    MESSAGE(r.first.message() << ": " << p.client->last_error());
    CHECK(p.client->last_error().find("truncation") != std::string::npos);
  }
}

TEST_CASE("a certificate failure on the kernel path is still explained in words") {
  net::io_context io;
  Policy cp = client_policy(TlsVersion::tls13, Cipher::aes_128_gcm);
  cp.ca = PemSource::file(pki().other_ca);
  Pair p = our_pair(io, cp, server_policy(TlsVersion::tls13, Cipher::aes_128_gcm),
                    kernel_only("localhost"), kernel_only());
  CHECK(p.client_ec == wasi_ktls::asio::errc::handshake_failed);
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
      [](const std::string& o) { return o.find('\n') != std::string::npos; }, kTimeout);
  REQUIRE_MESSAGE(up.ok(), server->output());
  const std::string first = server->output().substr(0, server->output().find('\n'));
  REQUIRE(first.rfind("listening on 127.0.0.1:", 0) == 0);
  const int port = std::stoi(first.substr(first.rfind(':') + 1));
  {
    INFO("our stream as the client");
    net::io_context io;
    auto [client, ec] = connect_to(io, port, client_policy(TlsVersion::tls13, Cipher::aes_128_gcm),
                                   kernel_only("localhost"));
    REQUIRE_MESSAGE(!ec, client->last_error());
    require_kernel(*client);
    const Bytes data = random_bytes(300000, 31);
    transfer(io, *client, *client, data);  // written to the server, read back from it
    std::uint64_t rx = 0;
    check_moved(*client, Direction::rx, rx, data.size(), 2, "client rx (echo)");
    REQUIRE(!shutdown(io, *client));
    CHECK(read_once(io, *client).first == net::error::eof);
  }
  {
    INFO("openssl s_client (not -quiet: it ends with close_notify when stdin ends)");
    Peer peer = spawn_openssl({"s_client", "-connect", "127.0.0.1:" + std::to_string(port),
                               "-CAfile", pki().ca, "-servername", "localhost", "-tls1_2",
                               "-verify_return_error"},
                              "echo_s_client");
    const std::string line = "echo me over kTLS\n";
    REQUIRE(feed_stdin(peer, line).ok());
    Status got = peer.proc->read_until(
        [&](const std::string& o) { return o.find(line) != std::string::npos; }, kTimeout);
    INFO("s_client stderr: " << peer.stderr_text());
    CHECK_MESSAGE(got.ok(), peer.proc->output());
    peer.proc->close_stdin();
    (void)peer.proc->wait(kTimeout);
  }
  // One line per connection; the server exits after the second.
  Status lines = server->read_until(
      [](const std::string& o) {
        std::size_t n = 0;
        for (auto p = o.find(" end="); p != std::string::npos; p = o.find(" end=", p + 1)) ++n;
        return n >= 2;
      },
      kTimeout);
  CHECK_MESSAGE(lines.ok(), server->output());
  auto status = server->wait(kTimeout);
  REQUIRE(status.ok());
  CHECK(*status == 0);
  MESSAGE("asio-echo-server said:\n" << server->output());
  CHECK(server->output().find("transport=ktls echoed=300000 end=close_notify") != std::string::npos);
  CHECK(server->output().find("TLS 1.2") != std::string::npos);
}
