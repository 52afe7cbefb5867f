#include "bench/worker.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <valgrind/callgrind.h>

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench/channel.h"
#include "bench/openssl_ctx.h"
#include "ktls/io/tcp_socket.h"

namespace wasi_ktls::bench {
namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string system = "openssl";
  std::string role = "client";
  std::string scenario;
  TlsSetup tls;
  std::uint16_t port = 0;  // client: where to connect; server: the listening socket is fd 3
  std::uint64_t bytes = 0;
  std::size_t chunk = 16384;
  std::size_t msg = 64;
  std::size_t rounds = 1000, warmup = 100;
  std::size_t count = 100;  // handshakes, or idle connections
  std::string path = "/";
};

// CPU and wall time of the measured phase.
// The total comes from CLOCK_PROCESS_CPUTIME_ID (exact, all threads); getrusage, whose
// user/system figures may be counted in scheduler ticks, only splits it.
class Meter {
 public:
  Meter() : wall_(Clock::now()), cpu_(process_cpu_seconds()) {
    ::getrusage(RUSAGE_SELF, &ru_);
    CALLGRIND_START_INSTRUMENTATION;
  }
  void stop(Json& out) {
    CALLGRIND_STOP_INSTRUMENTATION;
    const double cpu = process_cpu_seconds() - cpu_;
    rusage now{};
    ::getrusage(RUSAGE_SELF, &now);
    const double user = secs(now.ru_utime) - secs(ru_.ru_utime);
    const double sys = secs(now.ru_stime) - secs(ru_.ru_stime);
    const double user_share = user + sys > 0 ? user / (user + sys) : 1.0;
    out["seconds"] = std::chrono::duration<double>(Clock::now() - wall_).count();
    out["cpu"] = cpu;
    out["user"] = cpu * user_share;
    out["sys"] = cpu * (1 - user_share);
  }

 private:
  static double secs(const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; }
  static double process_cpu_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
  }
  Clock::time_point wall_;
  double cpu_;
  rusage ru_{};
};

Status write_all(Channel& ch, std::span<const std::uint8_t> data) {
  while (!data.empty()) {
    auto n = ch.write(data);
    if (!n) return n.error();
    data = data.subspan(*n);
  }
  return {};
}

Status read_exact(Channel& ch, std::span<std::uint8_t> buf) {
  while (!buf.empty()) {
    auto n = ch.read(buf);
    if (!n) return n.error();
    if (*n == 0) return make_error(ErrorKind::truncated, "the peer closed early");
    buf = buf.subspan(*n);
  }
  return {};
}

Status bulk(Channel& ch, const Options& o, bool send, Json& out) {
  std::vector<std::uint8_t> buf(o.chunk, 0x5a);
  Meter m;
  std::uint64_t done = 0;
  while (done < o.bytes) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(o.chunk, o.bytes - done));
    auto n = send ? ch.write(std::span(buf.data(), want)) : ch.read(std::span(buf.data(), want));
    if (!n) return n.error();
    if (*n == 0) return make_error(ErrorKind::truncated, "the peer closed after {} bytes", done);
    done += *n;
  }
  m.stop(out);
  out["bytes"] = done;
  if (!send) {  // tell the sender everything arrived, so that it closes only then
    std::uint8_t ack = 1;
    if (auto st = write_all(ch, std::span(&ack, 1)); !st) return st;
  } else {
    std::uint8_t ack = 0;
    if (auto st = read_exact(ch, std::span(&ack, 1)); !st) return st;
  }
  return {};
}

Status request_response(Channel& ch, const Options& o, bool client, Json& out) {
  std::vector<std::uint8_t> buf(o.msg, 0x5a);
  std::vector<double> rtt;
  rtt.reserve(o.rounds);
  std::optional<Meter> m;
  for (std::size_t i = 0; i < o.warmup + o.rounds; ++i) {
    if (i == o.warmup) m.emplace();
    if (client) {
      auto t0 = Clock::now();
      if (auto st = write_all(ch, buf); !st) return st;
      if (auto st = read_exact(ch, buf); !st) return st;
      if (i >= o.warmup)
        rtt.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    } else {
      if (auto st = read_exact(ch, buf); !st) return st;
      if (auto st = write_all(ch, buf); !st) return st;
    }
  }
  if (!m) m.emplace();
  m->stop(out);
  out["bytes"] = 2 * o.msg * o.rounds;
  if (client) out["rtt_us"] = rtt;
  return {};
}

// A fresh TLS connection to 127.0.0.1:port from the harness's OpenSSL client; nullptr + error.
struct ClientConn {
  UniqueFd fd;
  SslPtr ssl;
};
Result<ClientConn> tls_connect(SSL_CTX* ctx, std::uint16_t port) {
  auto fd = tcp_connect("127.0.0.1", port, std::chrono::seconds(10));
  if (!fd) return fd.error();
  SslPtr ssl(SSL_new(ctx));
  if (!ssl || SSL_set_fd(ssl.get(), fd->get()) != 1) return make_error("{}", openssl_errors("SSL_new"));
  SSL_set1_host(ssl.get(), "localhost");
  if (SSL_connect(ssl.get()) != 1) return make_error(ErrorKind::handshake, "{}", openssl_errors("handshake"));
  return ClientConn{std::move(*fd), std::move(ssl)};
}

// Full handshakes, one after another, each closed with close_notify: no resumption.
Status handshakes(const Options& o, Json& out) {
  auto ctx = make_ssl_ctx(false, o.tls);
  if (!ctx) return ctx.error();
  SSL_CTX_set_session_cache_mode(ctx->get(), SSL_SESS_CACHE_OFF);
  Meter m;
  for (std::size_t i = 0; i < o.count; ++i) {
    auto c = tls_connect(ctx->get(), o.port);
    if (!c) return make_error("handshake {}: {}", i + 1, c.error().message);
    SSL_shutdown(c->ssl.get());
  }
  m.stop(out);
  out["handshakes"] = o.count;
  return {};
}

// `count` connections that finish their handshake and then stay idle until stdin closes.
Status idle(const Options& o, Json& out) {
  auto ctx = make_ssl_ctx(false, o.tls);
  if (!ctx) return ctx.error();
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);
  std::vector<ClientConn> conns;
  conns.reserve(o.count);
  for (std::size_t i = 0; i < o.count; ++i) {
    auto c = tls_connect(ctx->get(), o.port);
    if (!c) return make_error("connection {}: {}", i + 1, c.error().message);
    conns.push_back(std::move(*c));
  }
  out["connections"] = conns.size();
  std::printf("%s\n", Json{{"ready", true}}.dump().c_str());
  std::fflush(stdout);
  char c;
  while (::read(0, &c, 1) > 0) {
  }
  return {};
}

// GET path over HTTP/1.1 and read the body (Content-Length) in `chunk` reads.
Status get(const Options& o, Json& out) {
  auto ctx = make_ssl_ctx(false, o.tls);
  if (!ctx) return ctx.error();
  auto c = tls_connect(ctx->get(), o.port);
  if (!c) return c.error();
  Meter m;
  const std::string req = "GET " + o.path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  std::size_t w = 0;
  if (SSL_write_ex(c->ssl.get(), req.data(), req.size(), &w) != 1) return make_error("{}", openssl_errors("SSL_write"));
  std::vector<char> buf(o.chunk);
  std::string head;
  std::uint64_t body = 0;
  bool in_body = false;
  for (;;) {
    std::size_t n = 0;
    if (SSL_read_ex(c->ssl.get(), buf.data(), buf.size(), &n) != 1) {
      int e = SSL_get_error(c->ssl.get(), 0);
      if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && in_body)) break;
      return make_error("{}", openssl_errors("SSL_read"));
    }
    if (in_body) {
      body += n;
    } else {
      head.append(buf.data(), n);
      if (auto end = head.find("\r\n\r\n"); end != std::string::npos) {
        if (head.rfind("HTTP/1.1 200", 0) != 0)
          return make_error("the server answered: {}", head.substr(0, head.find('\r')));
        body = head.size() - end - 4;
        in_body = true;
      }
    }
    if (in_body && body >= o.bytes) break;
  }
  m.stop(out);
  if (body != o.bytes) return make_error("body of {} bytes, expected {}", body, o.bytes);
  out["bytes"] = body;
  return {};
}

// The server side of a file GET written by hand against OpenSSL: the request head is read,
// then the file goes out with SSL_sendfile (kTLS: spliced in the kernel) or, without kTLS,
// with read() and SSL_write in 256 KiB pieces.
Status serve_file(const Options& o, Json& out) {
  const bool ktls = o.system == "openssl-ktls";
  auto ctx = make_ssl_ctx(true, o.tls, ktls);
  if (!ctx) return ctx.error();
  auto fd = tcp_accept(3, std::chrono::seconds(30));
  if (!fd) return fd.error();
  SslPtr ssl(SSL_new(ctx->get()));
  if (!ssl || SSL_set_fd(ssl.get(), fd->get()) != 1) return make_error("{}", openssl_errors("SSL_new"));
  if (SSL_accept(ssl.get()) != 1) return make_error(ErrorKind::handshake, "{}", openssl_errors("handshake"));
  if (ktls && !BIO_get_ktls_send(SSL_get_wbio(ssl.get())))
    return make_error(ErrorKind::backend_unavailable, "OpenSSL did not enable kTLS for sending");
  out["transport"] = ktls ? "kernel TX (OpenSSL kTLS, SSL_sendfile)" : "userspace (OpenSSL, read+SSL_write)";
  UniqueFd file(::open(o.path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) return errno_error(errno, "open " + o.path);
  Meter m;
  std::string head;
  char c;
  while (head.size() < 8192 && head.find("\r\n\r\n") == std::string::npos) {
    std::size_t n = 0;
    if (SSL_read_ex(ssl.get(), &c, 1, &n) != 1) return make_error("{}", openssl_errors("reading the request"));
    head += c;
  }
  const std::string reply = fmt::format("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", o.bytes);
  std::size_t w = 0;
  if (SSL_write_ex(ssl.get(), reply.data(), reply.size(), &w) != 1) return make_error("{}", openssl_errors("SSL_write"));
  std::uint64_t sent = 0;
  std::vector<std::uint8_t> buf(ktls ? 0 : 256 * 1024);
  while (sent < o.bytes) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(o.bytes - sent, 256 * 1024));
    if (ktls) {
      ossl_ssize_t n = SSL_sendfile(ssl.get(), file.get(), static_cast<off_t>(sent), want, 0);
      if (n <= 0) return make_error("{}", openssl_errors("SSL_sendfile"));
      sent += static_cast<std::uint64_t>(n);
    } else {
      ssize_t n = ::pread(file.get(), buf.data(), want, static_cast<off_t>(sent));
      if (n <= 0) return make_error("reading {}: {}", o.path, n == 0 ? "end of file" : std::strerror(errno));
      if (SSL_write_ex(ssl.get(), buf.data(), static_cast<std::size_t>(n), &w) != 1)
        return make_error("{}", openssl_errors("SSL_write"));
      sent += static_cast<std::uint64_t>(n);
    }
  }
  m.stop(out);
  out["bytes"] = sent;
  SSL_shutdown(ssl.get());
  return {};
}

int run(const Options& o) {
  Json out;
  Status st;
  const bool server = o.role == "server";
  if (o.scenario == "handshakes") {
    st = handshakes(o, out);
  } else if (o.scenario == "idle") {
    st = idle(o, out);
  } else if (o.scenario == "get") {
    st = get(o, out);
  } else if (o.scenario == "serve-file") {
    st = serve_file(o, out);
  } else {
    Result<UniqueFd> fd = server ? tcp_accept(3, std::chrono::seconds(30))
                                 : tcp_connect("127.0.0.1", o.port, std::chrono::seconds(10));
    if (!fd) {
      st = fd.error();
    } else if (auto ch = open_channel(o.system, server, std::move(*fd), o.tls); !ch) {
      st = ch.error();
    } else {
      out["transport"] = (*ch)->transport();
      if (o.scenario == "send" || o.scenario == "recv")
        st = bulk(**ch, o, o.scenario == "send", out);
      else if (o.scenario == "rr")
        st = request_response(**ch, o, !server, out);
      else
        st = make_error(ErrorKind::usage, "unknown scenario '{}'", o.scenario);
    }
  }
  if (!st) {
    out = Json{{"error", st.error().message}};
  }
  std::printf("%s\n", out.dump().c_str());
  return st ? 0 : 1;
}

}  // namespace

cli::Command add_bench_worker_command(CLI::App& app) {
  auto o = std::make_shared<Options>();
  CLI::App* sub = app.add_subcommand("bench-worker", "One end of one benchmark measurement");
  sub->group("");  // hidden: the harness runs it
  sub->add_option("--system", o->system);
  sub->add_option("--role", o->role)->check(CLI::IsMember({"client", "server"}));
  sub->add_option("--scenario", o->scenario)->required();
  sub->add_option("--pki", o->tls.pki)->required();
  sub->add_option("--cert", o->tls.cert);
  sub->add_option("--key", o->tls.key);
  sub->add_option("--version", o->tls.version)->check(CLI::IsMember({"1.2", "1.3"}));
  sub->add_option("--tls13-suite", o->tls.tls13_suite);
  sub->add_option("--tls12-cipher", o->tls.tls12_cipher);
  sub->add_option("--port", o->port);
  sub->add_option("--bytes", o->bytes);
  sub->add_option("--chunk", o->chunk)->check(CLI::Range(1, 1 << 26));
  sub->add_option("--msg", o->msg)->check(CLI::Range(1, 1 << 20));
  sub->add_option("--rounds", o->rounds);
  sub->add_option("--warmup", o->warmup);
  sub->add_option("--count", o->count);
  sub->add_option("--path", o->path);
  return {sub, [o] { return run(*o); }};
}

}  // namespace wasi_ktls::bench
