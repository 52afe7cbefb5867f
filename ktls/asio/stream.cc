#include "ktls/asio/stream.h"

#include <poll.h>

#include <cerrno>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>

#include "ktls/conn/core.h"
#include "ktls/conn/perform.h"

namespace wasi_ktls::asio {

namespace {

class Category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "wasi_ktls"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::handshake_failed: return "TLS handshake failed";
      case errc::backend_unavailable: return "requested TLS backend unavailable";
      case errc::kernel_install_failed: return "kernel TLS install failed half-way";
      case errc::tls_error: return "fatal TLS error";
      case errc::shut_down: return "write after TLS shutdown";
      case errc::not_established: return "TLS stream not established";
      case errc::wrong_role: return "handshake type does not match the TLS context's role";
      case errc::operation_in_progress: return "another operation of this kind is outstanding";
    }
    return "unknown wasi_ktls error";
  }
};

}  // namespace

const boost::system::error_category& error_category() {
  static const Category c;
  return c;
}

boost::system::error_code make_error_code(errc e) {
  return {static_cast<int>(e), error_category()};
}

namespace detail {

using Lane = ConnectionCore::Lane;
using boost::system::error_code;

struct State {
  State(TlsContext c, StreamOptions o) : ctx(std::move(c)), options(std::move(o)) {}

  TlsContext ctx;
  StreamOptions options;
  Result<Backend> backend = Backend::auto_;
  std::optional<ConnectionCore> core;
  std::string last_error;
  const HandshakeInfo no_info{};
  const std::string no_reason{};

  error_code fail(error_code ec, std::string why) {
    last_error = std::move(why);
    return ec;
  }
  error_code fail(errc e, std::string why) { return fail(make_error_code(e), std::move(why)); }

  // The error's kind decides its code; its message is last_error().
  error_code fail(const Error& e) {
    error_code ec;
    switch (e.kind) {
      case ErrorKind::truncated: ec = boost::asio::ssl::error::stream_truncated; break;
      case ErrorKind::cancelled: ec = boost::asio::error::operation_aborted; break;
      case ErrorKind::timeout: ec = boost::asio::error::timed_out; break;
      case ErrorKind::handshake: ec = make_error_code(errc::handshake_failed); break;
      case ErrorKind::backend_unavailable: ec = make_error_code(errc::backend_unavailable); break;
      case ErrorKind::kernel_install: ec = make_error_code(errc::kernel_install_failed); break;
      case ErrorKind::closed: ec = make_error_code(errc::shut_down); break;
      case ErrorKind::usage: ec = make_error_code(errc::operation_in_progress); break;
      case ErrorKind::system:
        ec = e.sys_errno != 0 ? error_code(e.sys_errno, boost::system::system_category())
                              : make_error_code(errc::tls_error);
        break;
      default: ec = make_error_code(errc::tls_error); break;
    }
    return fail(ec, e.message);
  }
};

void StateDeleter::operator()(State* s) const { delete s; }

namespace {

Action done(error_code ec, std::size_t n = 0) {
  Action a;
  a.ec = ec;
  a.bytes = n;
  return a;
}

Action ask(Action::Kind k) {
  Action a;
  a.kind = k;
  return a;
}

// What a socket operation's completion means to the core: bytes, 0 at FIN, or -errno.
long result_of(const error_code& ec, std::size_t n) {
  if (!ec) return static_cast<long>(n);
  if (ec == boost::asio::error::eof) return 0;
  if (ec == boost::asio::error::operation_aborted) return -ECANCELED;
  if (ec.category() == boost::system::system_category()) return -ec.value();
  return -EIO;
}

Lane lane_of(const Op& op) { return op.kind == Op::Kind::read ? Lane::read : Lane::write; }

// What a read left for the write side (an alert, a KeyUpdate, OpenSSL's answer), as far as
// the socket takes it now: a read never waits for a peer to make room, and nothing of the
// stream outlives the caller's operations. The rest goes ahead of the next write or shutdown.
void flush_owed(ConnectionCore& core, int fd) {
  if (!core.owes_writes() || !core.flush(/*wait=*/false)) return;
  while (!core.step(Lane::write).done())
    core.complete(Lane::write, perform_now(fd, core.step(Lane::write)));
  (void)core.take_result(Lane::write);  // a failure is the next write's to report
}

}  // namespace

Action Op::run(Stream& s) {
  State& st = *s.state_;
  ConnectionCore& core = *st.core;
  const int fd = s.socket_.native_handle();
  const Lane lane = lane_of(*this);
  for (;;) {
    const Step& step = core.step(lane);
    if (step.done()) {
      Result<std::size_t> r = core.take_result(lane);
      if (kind == Kind::read) flush_owed(core, fd);
      if (!r) return done(st.fail(r.error()));
      if (kind == Kind::read && *r == 0)
        return done(st.fail(boost::asio::error::eof, "peer sent close_notify"));
      return done({}, *r);
    }
    if (step.kind == Step::Kind::recv) {
      Action a = ask(Action::Kind::read_some);
      a.in = boost::asio::buffer(step.in.data(), step.in.size());
      return a;
    }
    if (step.kind == Step::Kind::send) {
      Action a = ask(Action::Kind::write_some);
      a.out = boost::asio::buffer(step.out.data(), step.out.size());
      return a;
    }
    // Control records and the calls that never wait, without blocking.
    const long r = perform_now(fd, step);
    if (r == -EAGAIN || r == -EWOULDBLOCK)
      return ask(step.poll_events() == POLLIN ? Action::Kind::wait_read : Action::Kind::wait_write);
    core.complete(lane, r);
  }
}

Action Op::start(Stream& s) {
  State& st = *s.state_;
  if (kind == Kind::handshake) {
    if (st.core)
      return done(st.fail(errc::not_established, "async_handshake may run once per stream"));
    const Role want = type == boost::asio::ssl::stream_base::client ? Role::client : Role::server;
    if (st.ctx.role() != want) {
      return done(st.fail(errc::wrong_role, want == Role::client
                                                ? "client handshake with a server TlsContext"
                                                : "server handshake with a client TlsContext"));
    }
    if (!st.backend) return done(st.fail(errc::backend_unavailable, st.backend.error().message));
    ConnectionOptions o;
    o.backend = *st.backend;
    o.tx_record_limit = st.options.tx_record_limit;
    auto core = want == Role::client ? ConnectionCore::client(st.ctx, st.options.server_name, o)
                                     : ConnectionCore::server(st.ctx, o);
    if (!core) return done(st.fail(errc::handshake_failed, core.error().message));
    st.core.emplace(std::move(*core));
    (void)st.core->handshake();  // a fresh core always starts it
    return run(s);
  }

  if (!st.core || !st.core->established()) {
    return done(st.fail(errc::not_established,
                        st.core ? "the TLS stream failed earlier: " + st.last_error
                                : std::string("the TLS handshake has not completed")));
  }
  ConnectionCore& core = *st.core;
  if (kind == Kind::read && in.size() == 0) return done({}, 0);
  if (kind == Kind::write && out.size() == 0) return done({}, 0);
  Status started;
  switch (kind) {
    case Kind::read:
      started = core.read(std::span(static_cast<std::uint8_t*>(in.data()), in.size()));
      break;
    case Kind::write:
      // As ssl::stream's write_some: complete after what one send took.
      started = core.write(std::span(static_cast<const std::uint8_t*>(out.data()), out.size()),
                           /*all=*/false);
      break;
    default:
      started = core.close();
      break;
  }
  if (!started) return done(st.fail(started.error()));
  return run(s);
}

Action Op::resume(Stream& s, error_code ec, std::size_t n) {
  State& st = *s.state_;
  switch (last) {
    case Action::Kind::wait_read:
    case Action::Kind::wait_write:
      if (ec) st.core->complete(lane_of(*this), result_of(ec, 0));
      return run(s);  // ready: the same step again
    default:
      st.core->complete(lane_of(*this), result_of(ec, n));
      return run(s);
  }
}

}  // namespace detail

// ---- Stream ---------------------------------------------------------------------------------

void Stream::init(TlsContext ctx, StreamOptions options) {
  state_.reset(new detail::State(std::move(ctx), std::move(options)));
  state_->backend = state_->options.backend ? Result<Backend>(*state_->options.backend)
                                            : backend_from_environment();
}

Stream::Stream(Stream&&) noexcept = default;
Stream& Stream::operator=(Stream&&) noexcept = default;
Stream::~Stream() = default;

void Stream::set_server_name(std::string name) { state_->options.server_name = std::move(name); }

Transport Stream::transport() const {
  return state_->core ? state_->core->transport() : Transport::userspace;
}
const std::string& Stream::transport_reason() const {
  return state_->core ? state_->core->transport_reason() : state_->no_reason;
}
const HandshakeInfo& Stream::info() const {
  return state_->core ? state_->core->info() : state_->no_info;
}
std::uint64_t Stream::bytes_read() const { return state_->core ? state_->core->bytes_read() : 0; }
std::uint64_t Stream::bytes_written() const {
  return state_->core ? state_->core->bytes_written() : 0;
}
const std::string& Stream::last_error() const { return state_->last_error; }

}  // namespace wasi_ktls::asio
