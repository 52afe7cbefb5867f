// Connection on a kTLS kernel (run in tools/kernel-lab as root): our client and server against
// each other and against openssl s_server / s_client, TLS 1.2 and 1.3 x three AEADs, data both
// ways at record-boundary sizes and 8 MiB. Every case proves the kernel carried the records:
// transport() is the kernel, /proc/net/tls_stat counts our open kTLS sockets, and the
// kernel's own record sequence numbers (getsockopt TLS_TX/TLS_RX) moved by exactly the records
// we sent (and by at least the records needed for what we received from OpenSSL, whose record
// sizes depend on how it happened to read its stdin). Plus tickets, KeyUpdate on a kernel
// that cannot rekey, close_notify, truncation and certificate failures against real peers.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ktls/backend.h"
#include "ktls/connection.h"
#include "ktls/install.h"
#include "ktls/probe.h"
#include "ktls/tcp_socket.h"
#include "ktls/tls_stat.h"
#include "tests/support/child_process.h"
#include "tests/support/test_pki.h"

using namespace wasi_ktls;
using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;
using test::ChildProcess;

namespace {

// A dead peer must be an error on its pipe, not a signal that kills the test.
const bool kIgnoreSigpipe = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

constexpr auto kPeerTimeout = 60s;  // any one wait on an openssl peer; UML is slow
constexpr std::size_t kRecord = 16384;

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

// openssl s_server/s_client flags pinning the version and the suite.
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

ConnectionOptions kernel_only() {
  ConnectionOptions o;
  o.backend = Backend::ktls;  // a refusal is a failure here, never a quiet fallback
  o.handshake_timeout = 30s;
  o.io_timeout = 60s;
  return o;
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

std::uint64_t records(std::size_t n) { return (n + kRecord - 1) / kRecord; }

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

// ---- kernel evidence ----------------------------------------------------------------------

struct Counters {
  std::uint64_t tx_sw = 0, rx_sw = 0, decrypt_errors = 0;
};

Counters tls_counters() {
  auto st = read_tls_stat();
  REQUIRE_MESSAGE(st.ok(), message_of(st));
  Counters c;
  c.tx_sw = st->get("TlsCurrTxSw").value_or(~0ull);
  c.rx_sw = st->get("TlsCurrRxSw").value_or(~0ull);
  c.decrypt_errors = st->get("TlsDecryptError").value_or(~0ull);
  return c;
}

std::uint64_t kernel_seq(const Connection& c, Direction d) {
  auto info = read_kernel_crypto_info(c.fd(), d);
  REQUIRE_MESSAGE(info.ok(), message_of(info));
  return info->rec_seq();
}

// The record numbers we expect the kernel to hold for one of our connections.
struct Seqs {
  std::uint64_t tx = 0, rx = 0;
  bool tickets_pending = false;  // TLS 1.3 client: the server's tickets not yet read
  std::uint64_t tickets = 0;
};

// Initial values right after the hand-over. TLS 1.2: the Finished was record 0 under the
// new keys, both ways. TLS 1.3: the client starts at 0/0 and meets the server's tickets
// (records under the server's application key) on its first read; the server's TX starts
// after those tickets.
Seqs initial_seqs(TlsVersion v, Role role, std::uint64_t server_tickets = 2) {
  Seqs s;
  if (v == TlsVersion::tls12) {
    s.tx = s.rx = 1;
  } else if (role == Role::server) {
    s.tx = server_tickets;
  } else {
    s.tickets_pending = server_tickets > 0;
    s.tickets = server_tickets;
  }
  return s;
}

void check_seqs(const Connection& c, const Seqs& want, const char* who) {
  INFO(who);
  CHECK(kernel_seq(c, Direction::tx) == want.tx);
  CHECK(kernel_seq(c, Direction::rx) == want.rx);
}

// ---- running two sides at once -------------------------------------------------------------

struct Handshake {
  std::optional<Result<Connection>> client;
  std::optional<Result<Connection>> server;
};

Handshake our_pair(const Policy& cp, const Policy& sp, ConnectionOptions copt,
                   ConnectionOptions sopt) {
  TlsContext cctx = context(Role::client, cp);
  TlsContext sctx = context(Role::server, sp);
  auto listener = tcp_listen("127.0.0.1", 0);
  REQUIRE_MESSAGE(listener.ok(), message_of(listener));
  auto port = local_port(listener->get());
  REQUIRE(port.ok());
  Handshake h;
  std::thread server([&] {
    auto fd = tcp_accept(listener->get(), 30s);
    if (!fd) {
      h.server = fd.error();
      return;
    }
    h.server = Connection::accept(std::move(*fd), sctx, sopt);
  });
  auto fd = tcp_connect("127.0.0.1", *port, 30s);
  h.client = fd ? Connection::connect(std::move(*fd), cctx, "localhost", copt)
                : Result<Connection>(fd.error());
  server.join();
  return h;
}

void transfer(Connection& from, Connection& to, const Bytes& data) {
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

// ---- openssl peers ---------------------------------------------------------------------------

// The peer's stderr goes to a log (shown when a case fails), so its stdout is pure data.
struct Peer {
  std::optional<ChildProcess> proc;
  std::string log;
  std::size_t consumed = 0;  // stdout bytes already checked

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
  p.log = "/tmp/connection_lab_" + name + "_" + std::to_string(++counter) + ".stderr";
  std::vector<std::string> argv = {"sh", "-c", "exec openssl \"$@\" 2>'" + p.log + "'", "sh"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto c = ChildProcess::spawn(argv, /*inherit_stderr=*/true);
  REQUIRE_MESSAGE(c.ok(), message_of(c));
  p.proc.emplace(std::move(*c));
  return p;
}

// True once a socket listens on `port` (from /proc/net/tcp{,6}: probing with a connection
// would use up one of s_server's accepts).
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

void wait_listening(Peer& peer, int port) {
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!listening(port)) {
    INFO("peer stderr: " << peer.stderr_text());
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(20ms);
  }
}

Peer start_s_server(int port, const std::vector<std::string>& extra, bool quiet = true,
                    const std::string& cert = "", const std::string& key = "") {
  std::vector<std::string> args = {"s_server",
                                   "-accept",
                                   "127.0.0.1:" + std::to_string(port),
                                   "-cert",
                                   cert.empty() ? pki().server_cert : cert,
                                   "-key",
                                   key.empty() ? pki().server_key : key,
                                   "-naccept",
                                   "1"};
  if (quiet) args.push_back("-quiet");
  args.insert(args.end(), extra.begin(), extra.end());
  Peer p = spawn_openssl(args, "s_server");
  wait_listening(p, port);
  return p;
}

// Feeds the peer's stdin in PIPE_BUF pieces: poll() then promises each write won't block, so
// the deadline holds even if the peer stops reading.
Status feed_stdin(Peer& peer, std::string_view data) {
  auto deadline = std::chrono::steady_clock::now() + kPeerTimeout;
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

// The peer printed exactly `data` next on stdout.
void expect_peer_output(Peer& peer, const Bytes& data) {
  const std::size_t want = peer.consumed + data.size();
  Status s = peer.proc->read_until([want](const std::string& out) { return out.size() >= want; },
                                   kPeerTimeout);
  INFO("peer stderr: " << peer.stderr_text());
  REQUIRE_MESSAGE(s.ok(), message_of(s));
  const std::string& out = peer.proc->output();
  REQUIRE(out.size() == want);
  CHECK(std::memcmp(out.data() + peer.consumed, data.data(), data.size()) == 0);
  peer.consumed = want;
}

// We write `data`; the peer must print it.
void send_to_peer(Connection& conn, Peer& peer, const Bytes& data) {
  Status written;
  std::thread writer([&] { written = conn.write(data); });
  expect_peer_output(peer, data);
  writer.join();
  REQUIRE_MESSAGE(written.ok(), message_of(written));
}

// The peer gets `data` on stdin and sends it; we must read exactly it.
void receive_from_peer(Connection& conn, Peer& peer, const Bytes& data) {
  Status fed;
  std::thread feeder([&] { fed = feed_stdin(peer, as_text(data)); });
  Bytes got(data.size());
  auto n = conn.read_full(got);
  feeder.join();
  INFO("peer stderr: " << peer.stderr_text());
  REQUIRE_MESSAGE(fed.ok(), message_of(fed));
  REQUIRE_MESSAGE(n.ok(), message_of(n));
  REQUIRE(*n == data.size());
  CHECK(std::memcmp(got.data(), data.data(), data.size()) == 0);
}

// Our connection's RX after reading n bytes that OpenSSL framed as it liked: at least one
// record per 16 KiB, at most one per byte.
void check_rx_range(const Connection& conn, Seqs& s, std::size_t n) {
  const std::uint64_t now = kernel_seq(conn, Direction::rx);
  std::uint64_t base = s.rx;
  if (n > 0 && s.tickets_pending) {
    base += s.tickets;
    s.tickets_pending = false;
  }
  INFO("kernel RX rec_seq " << now << ", before " << base << ", bytes " << n);
  CHECK(now >= base + records(n));
  CHECK(now <= base + n);
  s.rx = now;
}

const std::vector<std::size_t> kPayloads = {0, 1, 16383, 16384, 16385, 8u << 20};

Peer start_s_client(int port, const std::vector<std::string>& extra, bool quiet = true) {
  std::vector<std::string> args = {"s_client", "-connect", "127.0.0.1:" + std::to_string(port),
                                   "-CAfile", pki().ca, "-servername", "localhost",
                                   "-verify_return_error"};
  if (quiet) args.push_back("-quiet");
  args.insert(args.end(), extra.begin(), extra.end());
  return spawn_openssl(args, "s_client");
}

// Our server for one s_client: listens, starts the client, accepts with the kernel.
struct ServedClient {
  Peer peer;
  std::optional<Result<Connection>> conn;
};

ServedClient serve_s_client(const Policy& sp, const std::vector<std::string>& client_args,
                            bool quiet = true, ConnectionOptions opt = kernel_only()) {
  TlsContext sctx = context(Role::server, sp);
  auto listener = tcp_listen("127.0.0.1", 0);
  REQUIRE_MESSAGE(listener.ok(), message_of(listener));
  auto port = local_port(listener->get());
  REQUIRE(port.ok());
  ServedClient sc{start_s_client(*port, client_args, quiet), std::nullopt};
  auto fd = tcp_accept(listener->get(), 30s);
  REQUIRE_MESSAGE(fd.ok(), message_of(fd));
  sc.conn = Connection::accept(std::move(*fd), sctx, opt);
  return sc;
}

Result<Connection> connect_to(int port, const Policy& cp, ConnectionOptions opt = kernel_only()) {
  TlsContext cctx = context(Role::client, cp);
  auto fd = tcp_connect("127.0.0.1", static_cast<std::uint16_t>(port), 30s);
  if (!fd) return fd.error();
  return Connection::connect(std::move(*fd), cctx, "localhost", opt);
}

int port_or_fail() {
  auto p = test::free_port();
  REQUIRE_MESSAGE(p.ok(), message_of(p));
  return *p;
}

void require_kernel(const Connection& c) {
  INFO("transport_reason: " << c.transport_reason());
  REQUIRE(c.transport() == Transport::kernel);
  CHECK(c.transport_reason().empty());
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
    for (Cipher c : kAllCiphers) {
      INFO(combo_name(v, c));
      CHECK(p.supports(v, c));
    }
  CHECK_FALSE(p.rekey.ok);  // 6.1: the KeyUpdate case below relies on it
}

TEST_CASE("our client <-> our server on kTLS: payloads both ways, sequence numbers, close_notify") {
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      const std::string name = combo_name(v, c);
      INFO(name);
      Timer t;
      const int fds_before = open_fd_count();
      const Counters before = tls_counters();
      {
        Handshake h = our_pair(client_policy(v, c), server_policy(v, c), kernel_only(),
                               kernel_only());
        REQUIRE_MESSAGE(h.client->ok(), message_of(*h.client));
        REQUIRE_MESSAGE(h.server->ok(), message_of(*h.server));
        Connection& client = **h.client;
        Connection& server = **h.server;
        require_kernel(client);
        require_kernel(server);
        CHECK(client.info().version == v);
        CHECK(client.info().cipher == c);

        const Counters open = tls_counters();
        CHECK(open.tx_sw - before.tx_sw == 2);
        CHECK(open.rx_sw - before.rx_sw == 2);

        Seqs cs = initial_seqs(v, Role::client), ss = initial_seqs(v, Role::server);
        check_seqs(client, cs, "client after handshake");
        check_seqs(server, ss, "server after handshake");
        std::uint64_t seed = 1;
        for (std::size_t n : kPayloads) {
          INFO(n << " bytes");
          transfer(client, server, random_bytes(n, seed++));
          cs.tx += records(n);
          ss.rx += records(n);
          transfer(server, client, random_bytes(n, seed++));
          ss.tx += records(n);
          cs.rx += records(n);
          if (n > 0 && cs.tickets_pending) {
            cs.rx += cs.tickets;
            cs.tickets_pending = false;
          }
          check_seqs(client, cs, "client");
          check_seqs(server, ss, "server");
        }

        // close_notify both ways, one alert record each.
        Status closed = client.close();
        REQUIRE_MESSAGE(closed.ok(), message_of(closed));
        std::uint8_t buf[64];
        auto r = server.read(buf);
        REQUIRE_MESSAGE(r.ok(), message_of(r));
        CHECK(*r == 0);
        closed = server.close();
        REQUIRE_MESSAGE(closed.ok(), message_of(closed));
        r = client.read(buf);
        REQUIRE_MESSAGE(r.ok(), message_of(r));
        CHECK(*r == 0);
        cs.tx += 1;
        ss.rx += 1;
        ss.tx += 1;
        cs.rx += 1;
        check_seqs(client, cs, "client after close_notify");
        check_seqs(server, ss, "server after close_notify");
      }
      const Counters after = tls_counters();
      CHECK(after.tx_sw == before.tx_sw);
      CHECK(after.rx_sw == before.rx_sw);
      CHECK(after.decrypt_errors == before.decrypt_errors);
      CHECK(open_fd_count() == fds_before);
      MESSAGE(name << " our client <-> our server: " << t.seconds() << " s");
    }
  }
}

TEST_CASE("our client (kTLS) <-> openssl s_server: payloads both ways, close_notify") {
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      const std::string name = combo_name(v, c);
      INFO(name);
      Timer t;
      const int fds_before = open_fd_count();
      const Counters before = tls_counters();
      {
        const int port = port_or_fail();
        Peer peer = start_s_server(port, openssl_pin(v, c));
        INFO("s_server stderr: " << peer.stderr_text());
        auto conn = connect_to(port, client_policy(v, c));
        REQUIRE_MESSAGE(conn.ok(), message_of(conn));
        Connection& client = *conn;
        require_kernel(client);
        CHECK(client.info().cipher == c);
        const Counters open = tls_counters();
        CHECK(open.tx_sw - before.tx_sw == 1);
        CHECK(open.rx_sw - before.rx_sw == 1);

        // s_server's default 2 session tickets (TLS 1.3) come first; the data must follow.
        Seqs cs = initial_seqs(v, Role::client);
        check_seqs(client, cs, "client after handshake");
        std::uint64_t seed = 100;
        for (std::size_t n : kPayloads) {
          INFO(n << " bytes");
          send_to_peer(client, peer, random_bytes(n, seed++));
          cs.tx += records(n);
          CHECK(kernel_seq(client, Direction::tx) == cs.tx);
          receive_from_peer(client, peer, random_bytes(n, seed++));
          check_rx_range(client, cs, n);
        }
        Status closed = client.close();
        REQUIRE_MESSAGE(closed.ok(), message_of(closed));
        std::uint8_t buf[64];
        auto r = client.read(buf);  // s_server answers close_notify with its own
        REQUIRE_MESSAGE(r.ok(), message_of(r));
        CHECK(*r == 0);
        CHECK(kernel_seq(client, Direction::tx) == cs.tx + 1);
        CHECK(kernel_seq(client, Direction::rx) == cs.rx + 1);
        auto status = peer.proc->wait(kPeerTimeout);
        REQUIRE_MESSAGE(status.ok(), message_of(status));
        CHECK(*status == 0);
      }
      const Counters after = tls_counters();
      CHECK(after.tx_sw == before.tx_sw);
      CHECK(after.rx_sw == before.rx_sw);
      CHECK(after.decrypt_errors == before.decrypt_errors);
      CHECK(open_fd_count() == fds_before);
      MESSAGE(name << " our client <-> s_server: " << t.seconds() << " s");
    }
  }
}

TEST_CASE("openssl s_client <-> our server (kTLS): payloads both ways, close_notify") {
  for (TlsVersion v : kAllVersions) {
    for (Cipher c : kAllCiphers) {
      const std::string name = combo_name(v, c);
      INFO(name);
      Timer t;
      const int fds_before = open_fd_count();
      const Counters before = tls_counters();
      {
        ServedClient sc = serve_s_client(server_policy(v, c), openssl_pin(v, c));
        INFO("s_client stderr: " << sc.peer.stderr_text());
        REQUIRE_MESSAGE(sc.conn->ok(), message_of(*sc.conn));
        Connection& server = **sc.conn;
        require_kernel(server);
        CHECK(server.info().cipher == c);
        const Counters open = tls_counters();
        CHECK(open.tx_sw - before.tx_sw == 1);
        CHECK(open.rx_sw - before.rx_sw == 1);

        // Our server's own 2 tickets went out in userspace, before the hand-over.
        Seqs ss = initial_seqs(v, Role::server);
        check_seqs(server, ss, "server after handshake");
        std::uint64_t seed = 200;
        for (std::size_t n : kPayloads) {
          INFO(n << " bytes");
          receive_from_peer(server, sc.peer, random_bytes(n, seed++));
          check_rx_range(server, ss, n);
          send_to_peer(server, sc.peer, random_bytes(n, seed++));
          ss.tx += records(n);
          CHECK(kernel_seq(server, Direction::tx) == ss.tx);
        }
        Status closed = server.close();
        REQUIRE_MESSAGE(closed.ok(), message_of(closed));
        std::uint8_t buf[64];
        auto r = server.read(buf);  // s_client answers close_notify with its own
        REQUIRE_MESSAGE(r.ok(), message_of(r));
        CHECK(*r == 0);
        CHECK(kernel_seq(server, Direction::tx) == ss.tx + 1);
        CHECK(kernel_seq(server, Direction::rx) == ss.rx + 1);
        auto status = sc.peer.proc->wait(kPeerTimeout);
        REQUIRE_MESSAGE(status.ok(), message_of(status));
        CHECK(*status == 0);
      }
      const Counters after = tls_counters();
      CHECK(after.tx_sw == before.tx_sw);
      CHECK(after.rx_sw == before.rx_sw);
      CHECK(after.decrypt_errors == before.decrypt_errors);
      CHECK(open_fd_count() == fds_before);
      MESSAGE(name << " s_client <-> our server: " << t.seconds() << " s");
    }
  }
}

TEST_CASE("a peer's KeyUpdate on a kernel that cannot rekey is a clear error (both roles)") {
  const Cipher c = Cipher::aes_128_gcm;
  const TlsVersion v = TlsVersion::tls13;
  const std::string marker = "ready-4711\n";
  {
    INFO("s_server sends KeyUpdate to our client");
    const int port = port_or_fail();
    // Not -quiet: s_server then reads commands from stdin; "k" = KeyUpdate.
    Peer peer = start_s_server(port, openssl_pin(v, c), /*quiet=*/false);
    auto conn = connect_to(port, client_policy(v, c));
    REQUIRE_MESSAGE(conn.ok(), message_of(conn));
    require_kernel(*conn);
    REQUIRE(feed_stdin(peer, marker).ok());
    Bytes got(marker.size());
    auto n = conn->read_full(got);
    REQUIRE_MESSAGE(n.ok(), message_of(n));
    CHECK(as_text(got) == marker);
    REQUIRE(feed_stdin(peer, "k\n").ok());
    std::uint8_t buf[64];
    auto r = conn->read(buf);
    INFO("s_server stdout: " << peer.proc->output());
    REQUIRE_FALSE(r.ok());
    MESSAGE("our client: " << r.error().message);
    CHECK(r.error().message.find("KeyUpdate") != std::string::npos);
    CHECK(r.error().message.find("cannot rekey") != std::string::npos);
    CHECK(r.error().message.find("6.14") != std::string::npos);
  }
  {
    INFO("s_client sends KeyUpdate to our server");
    ServedClient sc = serve_s_client(server_policy(v, c), openssl_pin(v, c), /*quiet=*/false);
    REQUIRE_MESSAGE(sc.conn->ok(), message_of(*sc.conn));
    Connection& server = **sc.conn;
    require_kernel(server);
    REQUIRE(server.write(marker).ok());
    Status s = sc.peer.proc->read_until(
        [&](const std::string& out) { return out.find(marker) != std::string::npos; },
        kPeerTimeout);
    REQUIRE_MESSAGE(s.ok(), message_of(s));
    REQUIRE(feed_stdin(sc.peer, "k\n").ok());
    std::uint8_t buf[64];
    auto r = server.read(buf);
    REQUIRE_FALSE(r.ok());
    MESSAGE("our server: " << r.error().message);
    CHECK(r.error().message.find("cannot rekey") != std::string::npos);
    CHECK(r.error().message.find("6.14") != std::string::npos);
  }
}

TEST_CASE("the peer closes first with close_notify: we read 0 and answer") {
  for (TlsVersion v : kAllVersions) {
    INFO(combo_name(v, Cipher::chacha20_poly1305));
    // Not -quiet: s_client then ends with close_notify when its stdin ends.
    ServedClient sc = serve_s_client(server_policy(v, Cipher::chacha20_poly1305),
                                     openssl_pin(v, Cipher::chacha20_poly1305), false);
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
    const std::uint64_t rx = kernel_seq(server, Direction::rx);
    CHECK(server.close().ok());
    auto status = sc.peer.proc->wait(kPeerTimeout);
    REQUIRE_MESSAGE(status.ok(), message_of(status));
    CHECK(*status == 0);
    CHECK(kernel_seq(server, Direction::rx) == rx);
  }
}

TEST_CASE("truncation: a peer killed without close_notify is an error, not EOF") {
  const TlsVersion v = TlsVersion::tls13;
  const Cipher c = Cipher::aes_256_gcm;
  {
    INFO("s_server killed under our client");
    const int port = port_or_fail();
    Peer peer = start_s_server(port, openssl_pin(v, c));
    auto conn = connect_to(port, client_policy(v, c));
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
    ServedClient sc = serve_s_client(server_policy(v, c), openssl_pin(v, c));
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
    Handshake h = our_pair(client_policy(v, c), server_policy(v, c), kernel_only(),
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
      Peer peer = start_s_server(port, openssl_pin(v, c), true, pki().wronghost_cert,
                                 pki().wronghost_key);
      auto conn = connect_to(port, client_policy(v, c));
      REQUIRE_FALSE(conn.ok());
      MESSAGE("our client: " << conn.error().message);
      CHECK(conn.error().message.find("hostname mismatch") != std::string::npos);
    }
    {
      INFO("s_server from a CA we don't trust");
      const int port = port_or_fail();
      Peer peer = start_s_server(port, openssl_pin(v, c));
      Policy cp = client_policy(v, c);
      cp.ca = PemSource::file(pki().other_ca);
      auto conn = connect_to(port, cp);
      REQUIRE_FALSE(conn.ok());
      MESSAGE("our client: " << conn.error().message);
      CHECK(conn.error().message.find("unable to get local issuer certificate") !=
            std::string::npos);
    }
    {
      INFO("s_server with an expired certificate");
      const int port = port_or_fail();
      Peer peer = start_s_server(port, openssl_pin(v, c), true, pki().expired_cert,
                                 pki().expired_key);
      auto conn = connect_to(port, client_policy(v, c));
      REQUIRE_FALSE(conn.ok());
      MESSAGE("our client: " << conn.error().message);
      CHECK(conn.error().message.find("certificate has expired") != std::string::npos);
    }
    {
      INFO("s_client checks our server's name and refuses it");
      Policy sp = server_policy(v, c);
      sp.certificate_chain = PemSource::file(pki().wronghost_cert);
      sp.private_key = PemSource::file(pki().wronghost_key);
      ServedClient sc = serve_s_client(sp, [&] {
        auto a = openssl_pin(v, c);
        a.insert(a.end(), {"-verify_hostname", "localhost"});
        return a;
      }());
      REQUIRE_FALSE(sc.conn->ok());
      MESSAGE("our server: " << sc.conn->error().message);
      CHECK(sc.conn->error().message.find("bad certificate") != std::string::npos);
    }
    {
      INFO("s_client without the required client certificate");
      Policy sp = server_policy(v, c);
      sp.ca = PemSource::file(pki().ca);
      sp.client_auth = ClientAuth::required;
      ServedClient sc = serve_s_client(sp, openssl_pin(v, c));
      REQUIRE_FALSE(sc.conn->ok());
      MESSAGE("our server: " << sc.conn->error().message);
      CHECK(sc.conn->error().message.find("did not return a certificate") != std::string::npos);
    }
    {
      INFO("s_client with the required client certificate");
      Policy sp = server_policy(v, c);
      sp.ca = PemSource::file(pki().ca);
      sp.client_auth = ClientAuth::required;
      auto args = openssl_pin(v, c);
      args.insert(args.end(), {"-cert", pki().client_cert, "-key", pki().client_key});
      ServedClient sc = serve_s_client(sp, args);
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
      TlsContext cctx = context(Role::client, client_policy(v, c));
      TlsContext sctx = context(Role::server, server_policy(v, c));
      auto listener = tcp_listen("127.0.0.1", 0);
      REQUIRE(listener.ok());
      auto port = local_port(listener->get());
      REQUIRE(port.ok());
      const Bytes data = random_bytes(3 * kRecord + 5, 31);
      std::optional<Result<Connection>> server;
      Result<std::size_t> got_n = std::size_t{0};
      Bytes got(data.size());
      std::thread t([&] {
        auto fd = tcp_accept(listener->get(), 30s);
        if (!fd) {
          server = fd.error();
          return;
        }
        server = Connection::accept(std::move(*fd), sctx, kernel_only());
        if (server->ok()) got_n = (*server)->read_full(got);
      });
      auto fd = tcp_connect("127.0.0.1", *port, 30s);
      REQUIRE(fd.ok());
      auto client = Connection::connect(std::move(*fd), cctx, "localhost", kernel_only());
      Status written = client ? client->write(data) : Status(client.error());
      t.join();
      REQUIRE_MESSAGE(client.ok(), message_of(client));
      REQUIRE_MESSAGE(written.ok(), message_of(written));
      REQUIRE_MESSAGE(server->ok(), message_of(*server));
      require_kernel(**server);
      REQUIRE_MESSAGE(got_n.ok(), message_of(got_n));
      CHECK(*got_n == data.size());
      CHECK(got == data);
      const Seqs ss = initial_seqs(v, Role::server);
      CHECK(kernel_seq(**server, Direction::rx) == ss.rx + records(data.size()));
    }
  }
}

TEST_CASE("a kTLS read that times out is an error and the connection goes on") {
  ConnectionOptions o = kernel_only();
  o.io_timeout = 500ms;
  Handshake h = our_pair(client_policy(TlsVersion::tls13, Cipher::aes_128_gcm),
                         server_policy(TlsVersion::tls13, Cipher::aes_128_gcm), o, kernel_only());
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
