#include "ktls/asio/stream_state.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>

#include <cerrno>

#include <boost/asio/error.hpp>

#include "ktls/conn/perform.h"

namespace wasi_ktls::asio::detail {

namespace {

using Lane = ConnectionCore::Lane;

// Our own ex_data slot on the SSL for the stream's verify callback: the SSL's app_data stays
// the user's.
int verify_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// OpenSSL's verify callback: the stream's callback, with Asio's arguments.
int verify_trampoline(int preverified, X509_STORE_CTX* store) {
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* cb = ssl != nullptr ? static_cast<VerifyCallback*>(SSL_get_ex_data(ssl, verify_index()))
                            : nullptr;
  if (cb == nullptr || !*cb) return preverified;
  boost::asio::ssl::verify_context ctx(store);
  try {
    return (*cb)(preverified != 0, ctx) ? 1 : 0;
  } catch (...) {
    return 0;  // an exception must not cross OpenSSL's C frames: the peer is not verified
  }
}

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

// ---- StreamState ----------------------------------------------------------------------------

StreamState::StreamState(Session session, StreamOptions options)
    : session_(std::move(session)), options_(std::move(options)) {
  backend_ = options_.backend ? Result<Backend>(*options_.backend) : backend_from_environment();
}

StreamState::~StreamState() = default;

std::unique_ptr<StreamState> StreamState::create(SSL_CTX* ctx, StreamOptions options,
                                                 error_code& ec) {
  auto session = Session::from_context(ctx);
  if (!session) {
    ec = boost::asio::error::no_memory;
    return nullptr;
  }
  ec = {};
  return std::unique_ptr<StreamState>(new StreamState(std::move(*session), std::move(options)));
}

SSL* StreamState::native_handle() const {
  if (session_) return session_->native_handle();
  return core_ ? core_->native_handle() : nullptr;
}

// With no SSL left (the kernel has the keys), there is nothing left to verify: as Asio's, a
// setting after the handshake changes nothing.
error_code StreamState::set_verify_mode(int mode) {
  if (SSL* ssl = native_handle()) SSL_set_verify(ssl, mode, SSL_get_verify_callback(ssl));
  return {};
}

error_code StreamState::set_verify_depth(int depth) {
  if (SSL* ssl = native_handle()) SSL_set_verify_depth(ssl, depth);
  return {};
}

error_code StreamState::set_verify_callback(VerifyCallback cb) {
  verify_ = std::move(cb);
  SSL* ssl = native_handle();
  if (ssl == nullptr) return {};
  if (verify_index() < 0 || SSL_set_ex_data(ssl, verify_index(), &verify_) != 1)
    return boost::asio::error::no_memory;
  SSL_set_verify(ssl, SSL_get_verify_mode(ssl), verify_trampoline);
  return {};
}

Transport StreamState::transport() const {
  return core_ ? core_->transport() : Transport::userspace;
}

const std::string& StreamState::transport_reason() const {
  static const std::string none;
  return core_ ? core_->transport_reason() : none;
}

const HandshakeInfo& StreamState::info() const {
  static const HandshakeInfo none{};
  return core_ ? core_->info() : none;
}

std::uint64_t StreamState::bytes_read() const { return core_ ? core_->bytes_read() : 0; }
std::uint64_t StreamState::bytes_written() const { return core_ ? core_->bytes_written() : 0; }

error_code StreamState::fail(error_code ec, std::string why) {
  last_error_ = std::move(why);
  return ec;
}

// ---- Op -------------------------------------------------------------------------------------

Action Op::finish(StreamState& s, const Error& e) {
  // The next layer's own error (a Beast timeout, a reset, a cancellation) reaches the caller
  // as the next layer said it. But a kTLS socket reports a record it could not authenticate
  // (EBADMSG), an oversized record or a bad header version as a socket error: that is the TLS
  // layer's verdict, so it is tls_error, as the same bytes are on the userspace transport.
  const bool tls_verdict = e.kind == ErrorKind::protocol || e.kind == ErrorKind::peer_alert;
  return done(s.fail(transport_ec && !tls_verdict ? transport_ec : error_code_of(e), e.message));
}

Action Op::run(StreamState& s, int fd) {
  ConnectionCore& core = *s.core_;
  const bool reading = kind == Kind::read || draining;
  const Lane lane = reading ? Lane::read : Lane::write;
  for (;;) {
    const Step& step = core.step(lane);
    if (step.done()) {
      Result<std::size_t> r = core.take_result(lane);
      if (reading) flush_owed(core, fd);
      if (!r) return finish(s, r.error());
      if (kind == Kind::handshake) return done({}, out.size());
      if (kind == Kind::shutdown) return *r == 0 && draining ? done({}) : drain(s, fd);
      if (kind == Kind::read && *r == 0)
        return done(s.fail(boost::asio::error::eof, "peer sent close_notify"));
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
    // As ssl::stream's, shutdown leaves the TCP connection to its owner (Beast's teardown
    // shuts it down itself, and fails on a socket both sides already shut down).
    if (step.kind == Step::Kind::shutdown_write && kind == Kind::shutdown) {
      core.complete(lane, 0);
      continue;
    }
    // Control records and the calls that never wait, without blocking.
    const long r = perform_now(fd, step);
    if (r == -EAGAIN || r == -EWOULDBLOCK)
      return ask(step.poll_events() == POLLIN ? Action::Kind::wait_read : Action::Kind::wait_write);
    core.complete(lane, r);
  }
}

// Shutdown, once our close_notify is out: as ssl::stream, wait for the peer's, discarding
// application data that comes first. A read the caller has outstanding takes the
// close_notify (as eof) instead, and the shutdown completes now.
Action Op::drain(StreamState& s, int fd) {
  draining = true;
  if (s.discard_.empty()) s.discard_.resize(16 * 1024);
  Status started = s.core_->read(s.discard_);
  if (!started) return started.error().kind == ErrorKind::usage ? done({}) : finish(s, started.error());
  return run(s, fd);
}

Action Op::start(StreamState& s, int fd) {
  if (kind == Kind::handshake) {
    if (s.core_ || !s.session_)
      return done(s.fail(errc::not_established, "the handshake may run once per stream"));
    if (!s.backend_) return done(s.fail(errc::backend_unavailable, s.backend_.error().message));
    s.session_->begin(type == boost::asio::ssl::stream_base::client ? Role::client : Role::server);
    // Bytes the caller already read from the peer (ssl::stream's buffered handshake).
    if (out.size() > 0)
      s.session_->feed(std::span(static_cast<const std::uint8_t*>(out.data()), out.size()));
    ConnectionOptions o;
    o.backend = *s.backend_;
    o.tx_record_limit = s.options_.tx_record_limit;
    s.core_.emplace(ConnectionCore::with_session(std::move(*s.session_), o));
    s.session_.reset();
    (void)s.core_->handshake();  // a fresh core always starts it
    return run(s, fd);
  }

  if (!s.core_ || !s.core_->established()) {
    return done(s.fail(errc::not_established,
                       s.core_ ? "the TLS stream failed earlier: " + s.last_error_
                               : std::string("the TLS handshake has not completed")));
  }
  ConnectionCore& core = *s.core_;
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
  if (!started) return finish(s, started.error());
  return run(s, fd);
}

Action Op::resume(StreamState& s, int fd, error_code ec, std::size_t n) {
  const Lane lane = kind == Kind::read || draining ? Lane::read : Lane::write;
  if (ec && ec != boost::asio::error::eof) transport_ec = ec;
  switch (last) {
    case Action::Kind::wait_read:
    case Action::Kind::wait_write:
      if (ec) s.core_->complete(lane, result_of(ec, 0));
      return run(s, fd);  // ready: the same step again
    default:
      s.core_->complete(lane, result_of(ec, n));
      return run(s, fd);
  }
}

}  // namespace wasi_ktls::asio::detail
