#include "ktls/conn/core.h"

#include <netinet/tcp.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <vector>

#include "ktls/conn/handover.h"
#include "ktls/conn/kernel_records.h"
#include "ktls/conn/record_path.h"
#include "ktls/conn/userspace_records.h"
#include "ktls/probe/probe.h"
#include "ktls/record/crypto_info.h"
#include "ktls/record/install.h"

namespace wasi_ktls {

struct ConnectionCore::Impl {
  enum class Phase : std::uint8_t { fresh, handshaking, installing, established, failed };

  ConnectionOptions options;
  Role role = Role::client;
  Phase phase = Phase::fresh;
  LaneOp lanes[2];

  // The handshake: OpenSSL's output is sent from here; input goes straight into the Session.
  std::optional<Session> session;
  SSL* ssl = nullptr;  // the Session's, while it lives (here or in the userspace path)
  std::vector<std::uint8_t> hs_out;
  std::size_t hs_sent = 0;
  std::optional<Error> hs_error;  // sent after its alert is flushed
  bool hs_done = false;

  // The install: its step, both directions' kernel structs, and what the kernel path keeps.
  bool adopted = false;  // with_keys(): no Session to fall back to
  InstallStep install_step = InstallStep::tcp_info;
  std::optional<KernelCryptoInfo> rx_info, tx_info;
  std::unique_ptr<TrafficSecrets> secrets;
  std::uint64_t tx_seq = 0;

  // After the hand-over.
  std::unique_ptr<RecordPath> path;
  Transport transport = Transport::userspace;
  std::string reason;
  HandshakeInfo info;
  std::optional<Error> failure;
  std::uint64_t bytes_read = 0;
  std::uint64_t bytes_written = 0;

  LaneOp& lane(Lane l) { return lanes[static_cast<int>(l)]; }
  const Probe& probe() const { return options.probe != nullptr ? *options.probe : kernel_probe(); }

  Status begin(Lane l, LaneOp::Kind kind) {
    LaneOp& op = lane(l);
    if (op.kind != LaneOp::Kind::idle)
      return make_error(ErrorKind::usage, "a {} is already in progress on this connection",
                        l == Lane::read ? "read" : "write, close or handshake");
    if (kind != LaneOp::Kind::handshake && phase != Phase::established) {
      if (phase == Phase::failed) return *failure;
      return make_error(ErrorKind::usage, "the TLS handshake has not completed");
    }
    op = LaneOp{};
    op.kind = kind;
    return {};
  }

  void fail(LaneOp& op, Error e) {
    phase = Phase::failed;
    failure = e;
    session.reset();
    ssl = nullptr;
    rx_info.reset();
    tx_info.reset();
    secrets.reset();
    op.finish(std::move(e));
  }

  // ---- handshake ---------------------------------------------------------------------------

  void handshake_step(LaneOp& op) {
    for (;;) {
      if (hs_sent < hs_out.size()) {
        op.step = Step::send(std::span(hs_out).subspan(hs_sent));
        return;
      }
      if (!session->pending_output().empty()) {
        session->take_output(hs_out);
        hs_sent = 0;
        continue;
      }
      if (hs_error) return fail(op, *hs_error);  // after the alert that explains it
      if (hs_done) return hand_over(op);
      // Exactly what OpenSSL asks for, so no byte past its last record leaves the kernel.
      if (const std::size_t want = session->want_read(); want > 0) {
        op.step = Step::recv(session->input_space(want));
        return;
      }
      auto st = session->advance();
      if (!st) {
        hs_error = st.error();
      } else if (st->done) {
        hs_done = true;
      } else if (session->want_read() == 0) {
        hs_error = make_error(ErrorKind::handshake,
                              "TLS handshake stalled: OpenSSL neither done nor reading");
      }
    }
  }

  void on_handshake_io(LaneOp& op, long r) {
    if (r == -EAGAIN || r == -EINTR) return;
    const bool sending = op.step.kind == Step::Kind::send;
    if (sending && r > 0) {
      hs_sent += static_cast<std::size_t>(r);
      return handshake_step(op);
    }
    if (!sending && r > 0) {
      session->commit_input(static_cast<std::size_t>(r));
      return handshake_step(op);
    }
    if (hs_error) return fail(op, *hs_error);  // our alert could not go out: the error stands
    if (r == 0) {
      return fail(op, sending ? make_error(ErrorKind::handshake, "TLS handshake: send sent nothing")
                              : make_error(ErrorKind::handshake,
                                           "TLS handshake failed: peer closed the connection"));
    }
    Error e = step_error(r, sending ? "sending during the TLS handshake"
                                    : "receiving during the TLS handshake",
                         options.handshake_timeout);
    if (e.kind == ErrorKind::timeout)
      e.message = fmt::format("TLS handshake timed out after {} ms", options.handshake_timeout.count());
    fail(op, std::move(e));
  }

  // ---- hand-over ---------------------------------------------------------------------------

  void hand_over(LaneOp& op) {
    info = session->info();
    auto decision = decide_backend(
        options.backend,
        // Userspace asked for: the kernel is not asked either (no probe of its own).
        options.backend == Backend::userspace
            ? std::nullopt
            : kernel_refusal(info, session->has_unconsumed_input(), probe()));
    if (!decision) {
      Error e = decision.error();
      e.kind = ErrorKind::backend_unavailable;
      return fail(op, std::move(e));
    }
    if (decision->transport == Transport::userspace)
      return establish_userspace(op, std::move(decision->reason));
    auto keys = session->take_keys();
    if (!keys) {
      Error e = keys.error();
      e.message = "cannot extract keys for the kernel: " + e.message;
      return fall_back(op, std::move(e));
    }
    if (Status s = prepare_install(*keys); !s) {
      Error e = s.error();
      e.message = "cannot build the kernel's key structs: " + e.message;
      return fall_back(op, std::move(e));
    }
    start_install(op);
  }

  // Both directions' kernel structs, and the secrets a kernel that can rekey needs; `keys`
  // (the caller's) is wiped when it goes.
  Status prepare_install(const TrafficKeys& keys) {
    auto rx = KernelCryptoInfo::build(keys, Direction::rx);
    if (!rx) return rx.error();
    auto tx = KernelCryptoInfo::build(keys, Direction::tx);
    if (!tx) return tx.error();
    rx_info.emplace(std::move(*rx));
    tx_info.emplace(std::move(*tx));
    tx_seq = keys.tx.seq;
    const std::size_t len = keys.tx.secret_len;
    if (keys.version == TlsVersion::tls13 && probe().rekey.ok && len > 0 &&
        len == keys.rx.secret_len) {
      secrets = std::make_unique<TrafficSecrets>();
      secrets->len = len;
      std::copy_n(keys.tx.secret.begin(), len, secrets->tx.begin());
      std::copy_n(keys.rx.secret.begin(), len, secrets->rx.begin());
    }
    return {};
  }

  void start_install(LaneOp& op) {
    phase = Phase::installing;
    install_step = InstallStep::tcp_info;
    op.step = Step::of(Step::Kind::tcp_state);
  }

  void on_install(LaneOp& op, long r) {
    if (r < 0 && install_step != InstallStep::tls_tx) {
      Error e = install_error(install_step, static_cast<int>(-r));
      e.message = "kernel refused the keys: " + e.message;
      return fall_back(op, std::move(e));
    }
    switch (install_step) {
      case InstallStep::tcp_info:
        if (r != TCP_ESTABLISHED) {
          return fall_back(op, Error{fmt::format("kernel refused the keys: kTLS install: the "
                                                 "socket is not ESTABLISHED "
                                                 "(TCP state {}); keys go in only on a "
                                                 "connected socket",
                                                 r),
                                     ENOTCONN});
        }
        install_step = InstallStep::ulp;
        op.step = Step::of(Step::Kind::attach_ulp);
        return;
      case InstallStep::ulp:
        // RX first: it starts parsing bytes already queued on the socket, which the peer
        // encrypted under its application key. A failure here leaves plain TCP.
        install_step = InstallStep::tls_rx;
        op.step = Step::set_key(Direction::rx, *rx_info);
        return;
      case InstallStep::tls_rx:
        install_step = InstallStep::tls_tx;
        op.step = Step::set_key(Direction::tx, *tx_info);
        return;
      case InstallStep::tls_tx:
        if (r < 0) {
          Error e = install_error(InstallStep::tls_tx, static_cast<int>(-r));
          return fail(op, Error{"kernel TLS install failed half-way, connection closed: " +
                                    e.message +
                                    "; TLS_RX was already installed, so the connection must "
                                    "be closed",
                                e.sys_errno, ErrorKind::kernel_install});
        }
        return establish_kernel(op);
    }
  }

  // Nothing reached the kernel's record layer: the socket still carries plain TCP.
  void fall_back(LaneOp& op, Error why) {
    rx_info.reset();
    tx_info.reset();
    secrets.reset();
    why.kind = ErrorKind::backend_unavailable;
    if (adopted || !session) return fail(op, std::move(why));
    auto decision = decide_backend(options.backend, why.message);
    if (!decision) {
      Error e = decision.error();
      e.kind = ErrorKind::backend_unavailable;
      return fail(op, std::move(e));
    }
    establish_userspace(op, std::move(decision->reason));
  }

  void establish_kernel(LaneOp& op) {
    KernelRecordsConfig c;
    c.version = info.version;
    c.cipher = *info.cipher;
    c.role = role;
    c.tx_seq = tx_seq;
    c.tx_record_limit = options.tx_record_limit;
    c.secrets = std::move(secrets);
    c.io_timeout = options.io_timeout;
    path = std::make_unique<KernelRecords>(std::move(c));
    // The kernel has the keys; ours go now. The Session (OpenSSL's whole state) too: the
    // kernel path never needs it again.
    rx_info.reset();
    tx_info.reset();
    session.reset();
    ssl = nullptr;
    hs_out = std::vector<std::uint8_t>();  // `= {}` would keep the capacity
    transport = Transport::kernel;
    reason.clear();
    phase = Phase::established;
    op.finish(std::size_t{0});
  }

  void establish_userspace(LaneOp& op, std::string why) {
    path = std::make_unique<UserspaceRecords>(std::move(*session), options.io_timeout);
    session.reset();
    hs_out = std::vector<std::uint8_t>();  // `= {}` would keep the capacity
    transport = Transport::userspace;
    reason = std::move(why);
    phase = Phase::established;
    op.finish(std::size_t{0});
  }
};

ConnectionCore::ConnectionCore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ConnectionCore::ConnectionCore(ConnectionCore&&) noexcept = default;
ConnectionCore& ConnectionCore::operator=(ConnectionCore&&) noexcept = default;
ConnectionCore::~ConnectionCore() = default;

Result<ConnectionCore> ConnectionCore::client(const TlsContext& ctx, std::string_view server_name,
                                              const ConnectionOptions& options) {
  auto session = Session::client(ctx, server_name);
  if (!session) return session.error();
  return with_session(std::move(*session), options);
}

Result<ConnectionCore> ConnectionCore::server(const TlsContext& ctx,
                                              const ConnectionOptions& options) {
  auto session = Session::server(ctx);
  if (!session) return session.error();
  return with_session(std::move(*session), options);
}

ConnectionCore ConnectionCore::with_session(Session session, const ConnectionOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->role = session.role();
  impl->ssl = session.native_handle();
  impl->session.emplace(std::move(session));
  return ConnectionCore(std::move(impl));
}

ConnectionCore ConnectionCore::with_keys(const TrafficKeys& keys, Role role,
                                         const ConnectionOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->role = role;
  impl->adopted = true;
  impl->info.version = keys.version;
  impl->info.cipher = keys.cipher;
  impl->info.suite = std::string(to_string(keys.cipher));
  if (Status s = impl->prepare_install(keys); !s) {
    impl->phase = Impl::Phase::failed;
    impl->failure = s.error();
  }
  return ConnectionCore(std::move(impl));
}

Status ConnectionCore::handshake() {
  Impl& s = *impl_;
  if (s.phase == Impl::Phase::failed) return *s.failure;
  if (s.phase != Impl::Phase::fresh)
    return make_error(ErrorKind::usage, "the handshake runs once per connection");
  if (Status st = s.begin(Lane::write, LaneOp::Kind::handshake); !st) return st;
  LaneOp& op = s.lane(Lane::write);
  if (s.adopted) {
    s.start_install(op);
  } else {
    s.phase = Impl::Phase::handshaking;
    s.handshake_step(op);
  }
  return {};
}

Status ConnectionCore::read(std::span<std::uint8_t> buf) {
  if (Status st = impl_->begin(Lane::read, LaneOp::Kind::read); !st) return st;
  LaneOp& op = impl_->lane(Lane::read);
  op.in = buf;
  impl_->path->start(op);
  return {};
}

Status ConnectionCore::write(std::span<const std::uint8_t> data, bool all) {
  if (Status st = impl_->begin(Lane::write, LaneOp::Kind::write); !st) return st;
  LaneOp& op = impl_->lane(Lane::write);
  op.out = data;
  op.all = all;
  impl_->path->start(op);
  return {};
}

Status ConnectionCore::read_now(std::span<std::uint8_t> buf) {
  if (Status st = impl_->begin(Lane::read, LaneOp::Kind::read); !st) return st;
  LaneOp& op = impl_->lane(Lane::read);
  op.in = buf;
  op.wait = false;
  impl_->path->start(op);
  return {};
}

Status ConnectionCore::write_now(std::span<const std::uint8_t> data) {
  if (Status st = impl_->begin(Lane::write, LaneOp::Kind::write); !st) return st;
  LaneOp& op = impl_->lane(Lane::write);
  op.out = data;
  op.all = false;
  op.wait = false;
  impl_->path->start(op);
  return {};
}

Status ConnectionCore::send_file(int file, std::uint64_t offset, std::uint64_t len) {
  if (Status st = impl_->begin(Lane::write, LaneOp::Kind::send_file); !st) return st;
  LaneOp& op = impl_->lane(Lane::write);
  op.file = file;
  op.offset = offset;
  op.left = len;
  impl_->path->start(op);
  return {};
}

Status ConnectionCore::close() {
  if (Status st = impl_->begin(Lane::write, LaneOp::Kind::close); !st) return st;
  impl_->path->start(impl_->lane(Lane::write));
  return {};
}

Status ConnectionCore::flush(bool wait) {
  if (Status st = impl_->begin(Lane::write, LaneOp::Kind::flush); !st) return st;
  LaneOp& op = impl_->lane(Lane::write);
  op.wait = wait;
  impl_->path->start(op);
  return {};
}

const Step& ConnectionCore::step(Lane lane) const {
  return impl_->lanes[static_cast<int>(lane)].step;
}

void ConnectionCore::complete(Lane lane, long result) {
  Impl& s = *impl_;
  LaneOp& op = s.lane(lane);
  if (op.kind == LaneOp::Kind::idle || op.step.done()) return;
  if (op.kind != LaneOp::Kind::handshake) return s.path->complete(op, result);
  if (s.phase == Impl::Phase::installing) return s.on_install(op, result);
  s.on_handshake_io(op, result);
}

Result<std::size_t> ConnectionCore::take_result(Lane lane) {
  Impl& s = *impl_;
  LaneOp& op = s.lane(lane);
  if (op.kind == LaneOp::Kind::idle || !op.result)
    return make_error(ErrorKind::usage, "no finished operation on this lane");
  Result<std::size_t> r = std::move(*op.result);
  if (r) {
    if (op.kind == LaneOp::Kind::read) s.bytes_read += *r;
    if (op.kind == LaneOp::Kind::write || op.kind == LaneOp::Kind::send_file)
      s.bytes_written += *r;
  }
  op = LaneOp{};
  return r;
}

bool ConnectionCore::busy(Lane lane) const {
  return impl_->lanes[static_cast<int>(lane)].kind != LaneOp::Kind::idle;
}

bool ConnectionCore::owes_writes() const {
  const Impl& s = *impl_;
  return s.phase == Impl::Phase::established && !busy(Lane::write) && s.path->owes_writes();
}

bool ConnectionCore::established() const { return impl_->phase == Impl::Phase::established; }
Transport ConnectionCore::transport() const { return impl_->transport; }
const std::string& ConnectionCore::transport_reason() const { return impl_->reason; }
const HandshakeInfo& ConnectionCore::info() const { return impl_->info; }
SSL* ConnectionCore::native_handle() const { return impl_->ssl; }
std::uint64_t ConnectionCore::bytes_read() const { return impl_->bytes_read; }
std::uint64_t ConnectionCore::bytes_written() const { return impl_->bytes_written; }

}  // namespace wasi_ktls
