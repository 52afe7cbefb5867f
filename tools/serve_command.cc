#include "tools/serve_command.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "ktls/conn/async_connection.h"
#include "ktls/io/engine.h"
#include "ktls/io/tcp_socket.h"
#include "ktls/probe/probe.h"
#include "tools/http_session.h"
#include "tools/static_files.h"
#include "tools/tls_options.h"

namespace wasi_ktls::cli {
namespace {

struct ServeOptions {
  TlsOptions tls;
  std::string listen = "127.0.0.1";
  std::uint16_t port = 8443;
  bool echo = false;
  bool require_client_cert = false;
  std::string root;
  unsigned threads = 0;               // 0: one per core
  std::uint64_t max_connections = 0;  // 0: serve forever
  std::string engine;                 // empty: WASI_KTLS_ENGINE, else automatic
};

std::mutex log_mutex;

void log_line(const std::string& s) {
  std::lock_guard l(log_mutex);
  std::fprintf(stderr, "%s\n", s.c_str());
}

void log_connection(const HttpSession& s, const Status& st) {
  const AsyncConnection& c = s.connection();
  const HandshakeInfo& i = c.info();
  std::string reason =
      c.transport_reason().empty() ? "" : fmt::format(" ({})", c.transport_reason());
  log_line(fmt::format("peer={} version={} suite={} alpn={} backend={}{} in={} out={} {}",
                       s.peer(), to_string(i.version), i.suite, i.alpn.empty() ? "-" : i.alpn,
                       to_string(c.transport()), reason, c.bytes_read(), c.bytes_written(),
                       st ? "ok" : "error: " + st.error().message));
}

// What every worker thread shares.
struct Shared {
  const ServeOptions& options;
  const TlsContext& ctx;
  ConnectionOptions conn_options;
  HttpSession::Config session_config;
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<bool> stop_accepting{false};
};

// One thread: its own engine and its own listening socket (SO_REUSEPORT, so the kernel
// spreads connections over the threads), serving every connection it accepts.
Status run_worker(Shared& sh, unsigned index, std::uint16_t port, EngineKind kind) {
  auto listener = tcp_listen(sh.options.listen, port, /*reuse_port=*/true);
  if (!listener) return listener.error();
  auto choice = make_engine(kind);
  if (!choice) return choice.error();
  Engine& engine = *choice->engine;
  log_line(fmt::format("worker {}: engine {}{}", index, engine.name(),
                       choice->reason.empty() ? "" : " (" + choice->reason + ")"));

  std::size_t live = 0;  // connections of this worker not yet ended
  auto config = sh.session_config;
  config.on_end = [&live](const HttpSession& s, const Status& st) {
    log_connection(s, st);
    --live;
  };
  std::function<void()> accept_next = [&] {
    Status st = engine.accept(listener->get(), kNoDeadline, [&](int fd) {
      if (fd < 0) {
        if (fd != -ECANCELED) log_line("accept: " + errno_error(-fd, "accept").message);
      } else {
        UniqueFd conn_fd(fd);
        std::string peer = peer_name(fd);
        ++live;
        std::uint64_t n = ++sh.accepted;
        if (sh.options.max_connections != 0 && n >= sh.options.max_connections)
          sh.stop_accepting = true;
        AsyncConnection::accept(engine, std::move(conn_fd), sh.ctx, sh.conn_options,
                                [&live, &config, peer](Result<AsyncConnection::Ptr> c) {
                                  if (!c) {
                                    log_line(fmt::format("peer={} handshake failed: {}", peer,
                                                         c.error().message));
                                    --live;
                                    return;
                                  }
                                  HttpSession::start(*c, peer, config);
                                });
      }
      if (!sh.stop_accepting) accept_next();
    });
    if (!st) log_line("accept: " + st.error().message);
  };
  accept_next();
  while (!sh.stop_accepting || live > 0) {
    auto ran = engine.run_once(std::chrono::milliseconds(200));
    if (!ran) return ran.error();
  }
  engine.cancel(listener->get());
  while (engine.in_flight() > 0)
    if (auto ran = engine.run_once(std::chrono::milliseconds(200)); !ran) return ran.error();
  return {};
}

// One line: what the kernel offers, before any worker's first hand-over would ask.
std::string probe_summary(const Probe& p) {
  std::string s = fmt::format("kernel probe: Linux {}: ", p.kernel);
  if (!p.ulp.ok) {
    s += "no kernel TLS (TCP_ULP tls: " + p.ulp.reason + ")";
  } else {
    std::vector<std::string> both;
    for (TlsVersion v : kAllVersions)
      for (Cipher c : kAllCiphers)
        if (p.supports(v, c)) both.push_back(fmt::format("{} {}", to_string(v), to_string(c)));
    s += both.empty() ? std::string("TLS ULP loads, but no version and cipher works both ways")
                      : fmt::format("kernel TLS both ways for {}", fmt::join(both, ", "));
    s += fmt::format("; TLS 1.3 rekey: {}", p.rekey.ok ? "yes" : "no");
  }
  s += "; io_uring: " + (p.io_uring.ok ? std::string("yes") : p.io_uring.reason);
  return s;
}

int run_serve(const ServeOptions& o) {
  auto fail = [](const std::string& msg, int code) {
    std::fprintf(stderr, "serve: %s\n", msg.c_str());
    return code;
  };
  auto policy = o.tls.policy();
  if (!policy) return fail(policy.error().message, 2);
  if (o.require_client_cert) {
    if (o.tls.ca.empty()) return fail("--require-client-cert needs --ca to verify clients with", 2);
    policy->client_auth = ClientAuth::required;
  }
  auto ctx = TlsContext::create(Role::server, *policy);
  if (!ctx) return fail(ctx.error().message, 2);
  auto copts = o.tls.connection_options();
  if (!copts) return fail(copts.error().message, 2);
  auto kind = o.engine.empty() ? engine_kind_from_environment() : parse_engine_kind(o.engine);
  if (!kind) return fail(kind.error().message, 2);
  std::optional<StaticFiles> files;
  if (!o.root.empty()) {
    auto f = StaticFiles::open(o.root);
    if (!f) return fail(f.error().message, 2);
    files.emplace(std::move(*f));
  }

  // Every hand-over reads the probe (measured once, on first use): measured here, before
  // anything listens, it does not run on an I/O thread in the middle of a handshake while
  // the other workers block on it.
  log_line(probe_summary(kernel_probe()));

  // Bind once to learn the port (0 means any); the workers then share it with SO_REUSEPORT.
  auto probe_listener = tcp_listen(o.listen, o.port, /*reuse_port=*/true);
  if (!probe_listener) return fail(probe_listener.error().message, 1);
  auto port = local_port(probe_listener->get());
  if (!port) return fail(port.error().message, 1);
  unsigned threads = o.threads != 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());

  Shared sh{o, *ctx, *copts, {}, {}, {}};
  sh.session_config.files = files ? &*files : nullptr;
  sh.session_config.echo = o.echo;
  log_line(fmt::format("serving {} on {}:{} with {} thread(s) (backend {})",
                       o.echo ? "echo" : "HTTP/1.1", o.listen, *port, threads,
                       to_string(copts->backend)));

  std::vector<std::thread> workers;
  std::vector<Status> results(threads);
  for (unsigned i = 0; i < threads; ++i)
    workers.emplace_back([&, i] { results[i] = run_worker(sh, i, *port, *kind); });
  probe_listener->reset();  // the workers' listeners take the connections from here on
  for (auto& w : workers) w.join();
  for (const Status& r : results)
    if (!r) return fail(r.error().message, 1);
  return 0;
}

}  // namespace

Command add_serve_command(CLI::App& parent) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* app = parent.add_subcommand(
      "serve", "TLS server: HTTP/1.1 GET / and GET /bytes/N (byte i = i % 251), files under "
               "--root, or --echo");
  o->tls.add_to(*app, Role::server);
  app->add_option("--listen", o->listen, "Address to listen on")->capture_default_str();
  app->add_option("--port", o->port, "TCP port (0: any free port)")->capture_default_str();
  app->add_flag("--echo", o->echo, "Echo every byte until the peer's close_notify");
  app->add_option("--root", o->root, "Serve the files under DIR (sent with send_file)");
  app->add_flag("--require-client-cert", o->require_client_cert,
                "Require a client certificate that chains to --ca (mTLS)");
  app->add_option("--threads", o->threads, "Worker threads, one engine each (0: one per core)")
      ->capture_default_str();
  app->add_option("--engine", o->engine,
                  "I/O engine: auto, io_uring or poll (default: $WASI_KTLS_ENGINE, else auto)")
      ->check(CLI::IsMember({"auto", "io_uring", "poll"}));
  app->add_option("--connections", o->max_connections,
                  "Exit after this many connections (0: serve forever)")
      ->capture_default_str();
  return Command{app, [o] { return run_serve(*o); }};
}

}  // namespace wasi_ktls::cli
