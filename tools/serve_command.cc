#include "tools/serve_command.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
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

// The engine refuses to start an operation once its bounded queue is full: a connection whose
// read or write cannot start fails, and an accept that cannot start takes no one. So each
// worker takes no more connections than its engine has room for. A connection has at most a
// read and a write in flight (AsyncConnection's contract); twice that, because how it uses
// the engine inside (handshake, close_notify, cancellation) is its own business. The worker's
// own: its accept, and one to spare.
constexpr unsigned kOpsPerConnection = 4;
constexpr unsigned kWorkerOps = 2;
constexpr unsigned kMaxEngineQueueDepth = 32768;  // make_engine's bound (IORING_MAX_ENTRIES)
constexpr unsigned kDefaultMaxConnectionsPerWorker = 256;
constexpr std::size_t kReadBufferSize = 64 * 1024;
constexpr unsigned kMaxConnectionsPerWorkerLimit =
    (kMaxEngineQueueDepth - kWorkerOps) / kOpsPerConnection;

unsigned engine_queue_depth(unsigned max_connections) {
  return max_connections * kOpsPerConnection + kWorkerOps;
}

struct ServeOptions {
  TlsOptions tls;
  std::string listen = "127.0.0.1";
  std::uint16_t port = 8443;
  bool echo = false;
  bool require_client_cert = false;
  std::string root;
  unsigned threads = 0;               // 0: one per core
  std::uint64_t max_connections = 0;  // 0: serve forever
  unsigned max_connections_per_worker = kDefaultMaxConnectionsPerWorker;
  std::string engine;  // empty: WASI_KTLS_ENGINE, else automatic
  // Seconds. What a client that stalls may hold: see HttpSession::Config and the README.
  double handshake_timeout_s = 10;
  double idle_timeout_s = 60;
  double header_timeout_s = 60;
  double send_timeout_s = 60;
};

constexpr double kMaxTimeoutS = 3600;

Result<std::chrono::milliseconds> timeout_option(const char* name, double seconds) {
  if (!(seconds >= 0.001) || seconds > kMaxTimeoutS)
    return make_error("{} {} must be a number of seconds from 0.001 to {}", name, seconds,
                      kMaxTimeoutS);
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

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

// accept(2) errors that belong to one connection already taken off the queue (accept(2):
// "should be treated like EAGAIN by retrying"): retrying at once cannot spin.
bool consumed_a_connection(int err) {
  switch (err) {
    case ECONNABORTED: case EPROTO: case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN:
    case ENONET: case EHOSTUNREACH: case ENETUNREACH:
      return true;
    default:
      return false;
  }
}

// One thread: its own engine and its own listening socket (SO_REUSEPORT, so the kernel
// spreads connections over the threads), serving every connection it accepts.
//
// Its one accept is in flight only while the worker can take another connection: at the cap
// it waits in the listen backlog until a connection ends, and when accept fails for want of
// resources (EMFILE, ENFILE, ENOBUFS, the engine's queue) the worker retries after a delay
// that doubles up to kMaxBackoff, or at once when a connection ends and frees what it held.
class Worker {
 public:
  Worker(Shared& sh, unsigned index, Engine& engine, int listen_fd)
      : sh_(sh), index_(index), engine_(engine), listen_fd_(listen_fd),
        config_(sh.session_config) {
    config_.read_buffer = read_buffer_;
    config_.on_end = [this](const HttpSession& s, const Status& st) {
      log_connection(s, st);
      connection_ended();
    };
  }

  Status run() {
    try_accept();
    while (!sh_.stop_accepting || live_ > 0) {
      auto ran = engine_.run_once(wait_time());
      if (!ran) return ran.error();
      try_accept();
    }
    engine_.cancel(listen_fd_);
    while (engine_.in_flight() > 0)
      if (auto ran = engine_.run_once(kTurn); !ran) return ran.error();
    return {};
  }

 private:
  static constexpr std::chrono::milliseconds kTurn{200};
  static constexpr std::chrono::milliseconds kFirstBackoff{10};
  static constexpr std::chrono::milliseconds kMaxBackoff{1000};
  // At the cap under steady load the worker pauses once per connection: one line per minute.
  static constexpr std::chrono::seconds kCapLogInterval{60};

  bool backing_off() const { return backoff_.count() > 0 && Clock::now() < retry_at_; }

  std::chrono::milliseconds wait_time() const {
    if (backoff_.count() == 0 || accept_in_flight_) return kTurn;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(retry_at_ - Clock::now());
    return std::clamp(left, std::chrono::milliseconds(0), kTurn);
  }

  void try_accept() {
    if (accept_in_flight_ || sh_.stop_accepting || backing_off()) return;
    if (live_ >= sh_.options.max_connections_per_worker) return note_cap();
    at_cap_ = false;
    accept_in_flight_ = true;
    Status st = engine_.accept(listen_fd_, kNoDeadline, [this](int r) {
      accept_in_flight_ = false;
      accepted(r);
    });
    if (!st) {
      accept_in_flight_ = false;
      back_off(st.error());
    }
  }

  void accepted(int r) {
    if (r == -ECANCELED) return;  // the run is ending
    if (r < 0) {
      if (!consumed_a_connection(-r)) return back_off(errno_error(-r, "accept"));
      log_line(fmt::format("worker {}: {}", index_, errno_error(-r, "accept").message));
      return try_accept();
    }
    UniqueFd conn_fd(r);
    if (backoff_.count() > 0) {
      log_line(fmt::format("worker {}: accepting again after {} failed attempt(s) in {:.1f} s",
                           index_, failed_attempts_,
                           std::chrono::duration<double>(Clock::now() - episode_start_).count()));
      backoff_ = {};
      failed_attempts_ = 0;
    }
    std::string peer = peer_name(r);
    ++live_;
    std::uint64_t n = ++sh_.accepted;
    if (sh_.options.max_connections != 0 && n >= sh_.options.max_connections)
      sh_.stop_accepting = true;
    // Nothing is set up for a client until its first bytes arrive (as nginx does): a flood
    // of silent sockets then costs their fds and no TLS state (about 60 KiB each: the
    // SSL, its record buffers, our input queue) until --handshake-timeout drops them.
    const auto deadline = Clock::now() + sh_.conn_options.handshake_timeout;
    const int fd = conn_fd.release();
    Status st = engine_.poll(fd, POLLIN, deadline, [this, fd, peer, deadline](int res) {
      UniqueFd owned(fd);
      if (res < 0) {
        const std::string why =
            res == -ETIME ? fmt::format("no ClientHello within {} ms (--handshake-timeout)",
                                        sh_.conn_options.handshake_timeout.count())
                          : errno_error(-res, "waiting for the ClientHello").message;
        log_line(fmt::format("peer={} handshake failed: {}", peer, why));
        return connection_ended();
      }
      handshake(std::move(owned), peer, deadline);
    });
    if (!st) {
      ::close(fd);
      log_line(fmt::format("peer={} handshake failed: {}", peer, st.error().message));
      connection_ended();
    }
    try_accept();
  }

  void handshake(UniqueFd conn_fd, const std::string& peer, Clock::time_point deadline) {
    ConnectionOptions options = sh_.conn_options;  // the bound runs from accept
    options.handshake_timeout = std::max(
        std::chrono::milliseconds(1),
        std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()));
    AsyncConnection::accept(engine_, std::move(conn_fd), sh_.ctx, options,
                            [this, peer](Result<AsyncConnection::Ptr> c) {
                              if (!c) {
                                log_line(fmt::format("peer={} handshake failed: {}", peer,
                                                     c.error().message));
                                return connection_ended();
                              }
                              HttpSession::start(*c, peer, config_);
                            });
  }

  // One line when an episode starts, none per attempt: a server out of fds must not also
  // flood its log.
  void back_off(const Error& why) {
    auto now = Clock::now();
    ++failed_attempts_;
    if (backoff_.count() == 0) {
      backoff_ = kFirstBackoff;
      episode_start_ = now;
      log_line(fmt::format("worker {}: {}; accepting paused, retrying every {} to {} ms "
                           "(at once when a connection ends)",
                           index_, why.message, kFirstBackoff.count(), kMaxBackoff.count()));
    } else {
      backoff_ = std::min(backoff_ * 2, kMaxBackoff);
    }
    retry_at_ = now + backoff_;
  }

  void note_cap() {
    if (at_cap_) return;
    at_cap_ = true;
    auto now = Clock::now();
    if (cap_logged_ && now - last_cap_log_ < kCapLogInterval) {
      ++unlogged_cap_pauses_;
      return;
    }
    log_line(fmt::format("worker {}: {} connections (--max-connections-per-worker): accepting "
                         "paused until one ends{}",
                         index_, live_,
                         unlogged_cap_pauses_ > 0
                             ? fmt::format(" ({} more such pauses since the last line)",
                                           unlogged_cap_pauses_)
                             : std::string()));
    cap_logged_ = true;
    last_cap_log_ = now;
    unlogged_cap_pauses_ = 0;
  }

  void connection_ended() {
    --live_;
    if (backoff_.count() > 0) {
      // It frees an fd, so a retry may well succeed now; but only once the connection is
      // gone, after this callback: the run loop retries at its next turn.
      retry_at_ = std::min(retry_at_, Clock::now());
      return;
    }
    try_accept();
  }

  Shared& sh_;
  unsigned index_;
  Engine& engine_;
  int listen_fd_;
  // Every session of this worker reads into it (one at a time, never while waiting).
  std::vector<std::uint8_t> read_buffer_ = std::vector<std::uint8_t>(kReadBufferSize);
  HttpSession::Config config_;  // sessions hold a reference: it lives as long as the worker
  std::size_t live_ = 0;        // connections accepted and not yet ended
  bool accept_in_flight_ = false;
  std::chrono::milliseconds backoff_{0};  // 0: not backing off
  Clock::time_point retry_at_;
  Clock::time_point episode_start_;
  std::uint64_t failed_attempts_ = 0;
  bool at_cap_ = false;
  bool cap_logged_ = false;
  Clock::time_point last_cap_log_;
  std::uint64_t unlogged_cap_pauses_ = 0;
};

// `listener` closes when the worker ends, even early: connections then go to the others.
Status run_worker(Shared& sh, unsigned index, UniqueFd listener, EngineKind kind) {
  auto choice = make_engine(kind, engine_queue_depth(sh.options.max_connections_per_worker));
  if (!choice) return choice.error();
  log_line(fmt::format("worker {}: engine {}{}", index, choice->engine->name(),
                       choice->reason.empty() ? "" : " (" + choice->reason + ")"));
  Worker w(sh, index, *choice->engine, listener.get());
  return w.run();
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

// Whether any TLS 1.3 connection could go to this kernel: else its secrets are not captured.
bool kernel_takes_tls13() {
  for (Cipher c : kAllCiphers)
    if (kernel_probe().supports(TlsVersion::tls13, c)) return true;
  return false;
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
  // Without client authentication OpenSSL never reads the CA: an unreadable or garbled --ca,
  // or one the user believes restricts who connects, would pass unnoticed.
  if (!o.tls.ca.empty() && !o.require_client_cert)
    return fail(fmt::format("--ca {} is only used with --require-client-cert (the CA client "
                            "certificates must chain to); without it no client is verified",
                            o.tls.ca),
                2);
  auto copts = o.tls.connection_options();
  if (!copts) return fail(copts.error().message, 2);
  auto handshake_timeout = timeout_option("--handshake-timeout", o.handshake_timeout_s);
  auto idle_timeout = timeout_option("--idle-timeout", o.idle_timeout_s);
  auto header_timeout = timeout_option("--header-timeout", o.header_timeout_s);
  auto send_timeout = timeout_option("--send-timeout", o.send_timeout_s);
  for (const auto* t : {&handshake_timeout, &idle_timeout, &header_timeout, &send_timeout})
    if (!*t) return fail(t->error().message, 2);
  copts->handshake_timeout = *handshake_timeout;
  // Every write's wait, close_notify's included (reads wait through HttpSession's bounds).
  copts->io_timeout = *send_timeout;
  policy->capture_tls13_secrets = copts->backend != Backend::userspace && kernel_takes_tls13();
  auto ctx = TlsContext::create(Role::server, *policy);
  if (!ctx) return fail(ctx.error().message, 2);
  auto kind = o.engine.empty() ? engine_kind_from_environment() : parse_engine_kind(o.engine);
  if (!kind) return fail(kind.error().message, 2);
  std::optional<StaticFiles> files;
  if (!o.root.empty()) {
    auto f = StaticFiles::open(o.root);
    if (!f) return fail(f.error().message, 2);
    files.emplace(std::move(*f));
  }

  // SO_REUSEPORT would otherwise let this serve share the port with another process of the
  // same user, each taking some of the connections.
  if (o.port != 0)
    if (Status free = port_in_use(o.listen, o.port); !free)
      return fail(fmt::format("--port {}: {}", o.port, free.error().message), 2);

  // Every hand-over reads the probe (measured once, on first use): measured here, before
  // anything listens, it does not run on an I/O thread in the middle of a handshake while
  // the other workers block on it.
  log_line(probe_summary(kernel_probe()));

  // Every worker's listener is made before any worker runs: the first learns the port (0:
  // any free one), the others join it (SO_REUSEPORT). A connection that comes before its
  // worker's engine is up waits in that listener's backlog. (A listener opened only to learn
  // the port and then closed resets the connections the kernel queued on it meanwhile.)
  unsigned threads = o.threads != 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  std::vector<UniqueFd> listeners;
  std::uint16_t port = o.port;
  for (unsigned i = 0; i < threads; ++i) {
    auto listener = tcp_listen(o.listen, port, /*reuse_port=*/true);
    if (!listener) return fail(listener.error().message, 2);
    if (i == 0) {
      auto bound = local_port(listener->get());
      if (!bound) return fail(bound.error().message, 1);
      port = *bound;
    }
    listeners.push_back(std::move(*listener));
  }

  Shared sh{o, *ctx, *copts, {}, {}, {}};
  sh.session_config.files = files ? &*files : nullptr;
  sh.session_config.echo = o.echo;
  sh.session_config.idle_timeout = *idle_timeout;
  sh.session_config.header_timeout = *header_timeout;
  log_line(fmt::format("serving {} on {}:{} with {} thread(s) (backend {})",
                       o.echo ? "echo" : "HTTP/1.1", o.listen, port, threads,
                       to_string(copts->backend)));

  std::vector<std::thread> workers;
  std::vector<Status> results(threads);
  for (unsigned i = 0; i < threads; ++i)
    workers.emplace_back(
        [&, i] { results[i] = run_worker(sh, i, std::move(listeners[i]), *kind); });
  for (auto& w : workers) w.join();
  for (const Status& r : results)
    if (!r) return fail(r.error().message, 1);
  return 0;
}

}  // namespace

Command add_serve_command(CLI::App& parent) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* app = parent.add_subcommand(
      "serve", "TLS server: HTTP/1.1 GET (or HEAD) / and /bytes/N (byte i = i % 251), files "
               "under --root, or --echo");
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
  app->add_option("--max-connections-per-worker", o->max_connections_per_worker,
                  "Connections one worker serves at once; more wait in the listen backlog "
                  "(sizes the worker's I/O engine queue)")
      ->check(CLI::Range(1u, kMaxConnectionsPerWorkerLimit))
      ->capture_default_str();
  app->add_option("--handshake-timeout", o->handshake_timeout_s,
                  "Seconds from accept to the end of the TLS handshake")
      ->capture_default_str();
  app->add_option("--idle-timeout", o->idle_timeout_s,
                  "Seconds a connection may wait for a request's first byte (after the "
                  "handshake or the last answer)")
      ->capture_default_str();
  app->add_option("--header-timeout", o->header_timeout_s,
                  "Seconds from a request's first byte to its end (head, and any body serve "
                  "skips)")
      ->capture_default_str();
  app->add_option("--send-timeout", o->send_timeout_s,
                  "Seconds any one write may wait for a client that does not read")
      ->capture_default_str();
  app->add_option("--connections", o->max_connections,
                  "Exit after this many connections (0: serve forever)")
      ->capture_default_str();
  return Command{app, [o] { return run_serve(*o); }};
}

}  // namespace wasi_ktls::cli
