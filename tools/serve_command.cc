#include "tools/serve_command.h"

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "ktls/tcp_socket.h"
#include "tools/http_message.h"
#include "tools/tls_options.h"

namespace wasi_ktls::cli {
namespace {

struct ServeOptions {
  TlsOptions tls;
  std::string listen = "127.0.0.1";
  std::uint16_t port = 8443;
  bool echo = false;
  bool require_client_cert = false;
  std::uint64_t max_connections = 0;  // 0: serve forever
  unsigned max_concurrent = 256;
};

// Connections in flight; the server waits for them before it exits.
class Inflight {
 public:
  bool try_enter(unsigned limit) {
    std::lock_guard l(m_);
    if (n_ >= limit) return false;
    ++n_;
    return true;
  }
  void leave() {
    std::lock_guard l(m_);
    --n_;
    cv_.notify_all();
  }
  void wait_idle() {
    std::unique_lock l(m_);
    cv_.wait(l, [&] { return n_ == 0; });
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  unsigned n_ = 0;
};

std::mutex log_mutex;

void log_line(const std::string& s) {
  std::lock_guard l(log_mutex);
  std::fprintf(stderr, "%s\n", s.c_str());
}

Status send_pattern(Connection& c, std::uint64_t length) {
  std::vector<std::uint8_t> buf(64 * 1024);
  for (std::uint64_t off = 0; off < length;) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), length - off));
    http::fill_pattern(off, std::span(buf.data(), n));
    if (auto st = c.write(std::span(buf.data(), n)); !st) return st;
    off += n;
  }
  return {};
}

// Serves requests until the client closes or asks to; returns how the connection ended.
Status serve_http(Connection& c) {
  std::string in;
  std::vector<std::uint8_t> buf(16 * 1024);
  for (;;) {
    auto head = http::head_length(in);
    if (!head) {
      (void)c.write(std::string_view("HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                     "Content-Length: 0\r\nConnection: close\r\n\r\n"));
      return head.error();
    }
    if (*head == 0) {
      auto n = c.read(buf);
      if (!n) return n.error();
      if (*n == 0) return {};  // close_notify between requests: a clean end
      in.append(reinterpret_cast<const char*>(buf.data()), *n);
      continue;
    }
    auto req = http::parse_request(std::string_view(in).substr(0, *head));
    in.erase(0, *head);
    http::Route r;
    bool keep_alive = false;
    if (req) {
      r = http::route(*req);
      keep_alive = req->keep_alive;
    } else {
      r.status = 400;
      r.text_body = req.error().message + "\n";
      r.body_length = r.text_body.size();
    }
    std::string head_text = http::response_head(r, keep_alive);
    if (!r.pattern_body) head_text += r.text_body;
    if (auto st = c.write(head_text); !st) return st;
    if (r.pattern_body)
      if (auto st = send_pattern(c, r.body_length); !st) return st;
    if (!req) return req.error();
    if (!keep_alive) return {};
  }
}

Status serve_echo(Connection& c) {
  std::vector<std::uint8_t> buf(64 * 1024);
  for (;;) {
    auto n = c.read(buf);
    if (!n) return n.error();
    if (*n == 0) return {};
    if (auto st = c.write(std::span(buf.data(), *n)); !st) return st;
  }
}

void handle(UniqueFd fd, std::string peer, const TlsContext& ctx, ConnectionOptions copts,
            bool echo) {
  auto conn = Connection::accept(std::move(fd), ctx, copts);
  if (!conn) {
    log_line(fmt::format("peer={} handshake failed: {}", peer, conn.error().message));
    return;
  }
  Status st = echo ? serve_echo(*conn) : serve_http(*conn);
  Status closed = conn->close();
  const HandshakeInfo& i = conn->info();
  std::string result = !st ? "error: " + st.error().message
                       : !closed ? "error at close: " + closed.error().message
                                 : "ok";
  std::string reason =
      conn->transport_reason().empty() ? "" : fmt::format(" ({})", conn->transport_reason());
  log_line(fmt::format("peer={} version={} suite={} alpn={} backend={}{} in={} out={} {}", peer,
                       to_string(i.version), i.suite, i.alpn.empty() ? "-" : i.alpn,
                       to_string(conn->transport()), reason, conn->bytes_read(),
                       conn->bytes_written(), result));
}

int run_serve(const ServeOptions& o) {
  auto policy = o.tls.policy();
  if (!policy) {
    std::fprintf(stderr, "serve: %s\n", policy.error().message.c_str());
    return 2;
  }
  if (o.require_client_cert) {
    if (o.tls.ca.empty()) {
      std::fprintf(stderr, "serve: --require-client-cert needs --ca to verify clients with\n");
      return 2;
    }
    policy->client_auth = ClientAuth::required;
  }
  auto ctx = TlsContext::create(Role::server, *policy);
  if (!ctx) {
    std::fprintf(stderr, "serve: %s\n", ctx.error().message.c_str());
    return 2;
  }
  auto copts = o.tls.connection_options();
  if (!copts) {
    std::fprintf(stderr, "serve: %s\n", copts.error().message.c_str());
    return 2;
  }
  auto listener = tcp_listen(o.listen, o.port);
  if (!listener) {
    std::fprintf(stderr, "serve: %s\n", listener.error().message.c_str());
    return 1;
  }
  auto port = local_port(listener->get());
  log_line(fmt::format("serving {} on {}:{} (backend {})", o.echo ? "echo" : "HTTP/1.1",
                       o.listen, port ? *port : 0, to_string(copts->backend)));

  Inflight inflight;
  for (std::uint64_t served = 0; o.max_connections == 0 || served < o.max_connections;) {
    std::string peer;
    auto fd = tcp_accept(listener->get(), std::chrono::milliseconds(-1), &peer);
    if (!fd) {
      log_line("accept: " + fd.error().message);
      if (fd.error().sys_errno == EMFILE || fd.error().sys_errno == ENFILE)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (!inflight.try_enter(o.max_concurrent)) {
      log_line(fmt::format("peer={} refused: {} connections in flight", peer, o.max_concurrent));
      continue;
    }
    ++served;
    std::thread([&inflight, &ctx, c = *copts, echo = o.echo, fd = std::move(*fd),
                 peer = std::move(peer)]() mutable {
      handle(std::move(fd), std::move(peer), *ctx, c, echo);
      inflight.leave();
    }).detach();
  }
  inflight.wait_idle();
  return 0;
}

}  // namespace

Command add_serve_command(CLI::App& parent) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* app = parent.add_subcommand(
      "serve", "TLS server: HTTP/1.1 GET / and GET /bytes/N (byte i = i % 251), or --echo");
  o->tls.add_to(*app, Role::server);
  app->add_option("--listen", o->listen, "Address to listen on")->capture_default_str();
  app->add_option("--port", o->port, "TCP port (0: any free port)")->capture_default_str();
  app->add_flag("--echo", o->echo, "Echo every byte until the peer's close_notify");
  app->add_flag("--require-client-cert", o->require_client_cert,
                "Require a client certificate that chains to --ca (mTLS)");
  app->add_option("--connections", o->max_connections,
                  "Exit after this many connections (0: serve forever)")
      ->capture_default_str();
  app->add_option("--max-concurrent", o->max_concurrent, "Connections served at once")
      ->capture_default_str()
      ->check(CLI::Range(1u, 100000u));
  return Command{app, [o] { return run_serve(*o); }};
}

}  // namespace wasi_ktls::cli
