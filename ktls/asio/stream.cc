#include "ktls/asio/stream.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>

#include "ktls/record/control_record.h"
#include "ktls/conn/handover.h"
#include "ktls/conn/kernel_transport.h"
#include "ktls/probe/probe.h"
#include "ktls/record/record_io.h"

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
    }
    return "unknown wasi_ktls error";
  }
};

// Plaintext per Session::write_plaintext call: bounds the ciphertext queued before it goes out.
constexpr std::size_t kWriteChunk = 256 * 1024;
// Ciphertext per socket read on the userspace transport.
constexpr std::size_t kRecvChunk = 64 * 1024;

}  // namespace

const boost::system::error_category& error_category() {
  static const Category c;
  return c;
}

boost::system::error_code make_error_code(errc e) {
  return {static_cast<int>(e), error_category()};
}

namespace detail {

struct State {
  State(TlsContext c, StreamOptions o) : ctx(std::move(c)), options(std::move(o)) {}

  TlsContext ctx;
  StreamOptions options;
  Result<Backend> backend = Backend::auto_;

  enum class Phase { fresh, handshaking, established, failed };
  Phase phase = Phase::fresh;
  std::optional<Session> session;  // handshake; afterwards the userspace transport's
  Transport transport = Transport::userspace;
  std::string reason;
  HandshakeInfo info;
  std::string last_error;
  std::vector<std::uint8_t> hs_buf;
  std::optional<Error> hs_error;

  // Kernel transport: the traffic secrets are kept for a KeyUpdate where the kernel can rekey.
  std::shared_ptr<TrafficKeys> keys;
  std::unique_ptr<KernelRecordIo> kio;

  // Userspace transport. Session output moves into tx_queue (the Session may grow and move
  // its buffer while a write is in flight) and is written by one operation at a time.
  std::vector<std::uint8_t> tx_queue, tx_inflight;
  bool tx_busy = false;
  boost::system::error_code tx_error;

  std::optional<boost::system::error_code> rx_dead;
  bool peer_closed = false;
  bool close_sent = false;
  std::uint64_t bytes_read = 0;
  std::uint64_t bytes_written = 0;

  boost::system::error_code fail(boost::system::error_code ec, std::string why) {
    last_error = std::move(why);
    return ec;
  }
  boost::system::error_code fail(errc e, std::string why) {
    return fail(make_error_code(e), std::move(why));
  }
  // A socket error keeps its own code; last_error says where it happened.
  boost::system::error_code socket_error(boost::system::error_code ec, const char* what) {
    return fail(ec, std::string(what) + ": " + ec.message());
  }
  void queue_output() {
    if (tx_queue.empty()) return session->take_output(tx_queue);  // a swap, no copy
    auto out = session->pending_output();
    tx_queue.insert(tx_queue.end(), out.begin(), out.end());
    session->consume_output(out.size());
  }
};

void StateDeleter::operator()(State* s) const { delete s; }

namespace {

bool is_system(const boost::system::error_code& ec) {
  return ec.category() == boost::system::system_category();
}

Step read_into(boost::asio::mutable_buffer b) {
  Step s;
  s.kind = Step::Kind::read_some;
  s.in = b;
  return s;
}

Step write_out(Step::Kind k, boost::asio::const_buffer b) {
  Step s;
  s.kind = k;
  s.out = b;
  return s;
}

Step just(Step::Kind k) {
  Step s;
  s.kind = k;
  return s;
}

Step not_established(State& st) {
  return Step::done(st.fail(errc::not_established,
                            st.phase == State::Phase::failed
                                ? "the TLS stream failed earlier: " + st.last_error
                                : std::string("the TLS handshake has not completed")));
}

}  // namespace

// ---- handshake ------------------------------------------------------------------------------

Step HandshakeOp::start(Stream& s) {
  State& st = *s.state_;
  if (st.phase != State::Phase::fresh)
    return Step::done(st.fail(errc::not_established, "async_handshake may run once per stream"));
  const Role want = type_ == boost::asio::ssl::stream_base::client ? Role::client : Role::server;
  if (st.ctx.role() != want) {
    st.phase = State::Phase::failed;
    return Step::done(st.fail(errc::wrong_role,
                              want == Role::client
                                  ? "client handshake with a server TlsContext"
                                  : "server handshake with a client TlsContext"));
  }
  if (!st.backend) {
    st.phase = State::Phase::failed;
    return Step::done(st.fail(errc::backend_unavailable, st.backend.error().message));
  }
  auto session = want == Role::client ? Session::client(st.ctx, st.options.server_name)
                                      : Session::server(st.ctx);
  if (!session) {
    st.phase = State::Phase::failed;
    return Step::done(st.fail(errc::handshake_failed, session.error().message));
  }
  st.session.emplace(std::move(*session));
  st.hs_buf.resize(16384 + 256);
  st.phase = State::Phase::handshaking;
  return advance(s);
}

Step HandshakeOp::advance(Stream& s) {
  State& st = *s.state_;
  auto step = st.session->advance();
  if (!step) {
    st.hs_error = step.error();
    st.phase = State::Phase::failed;
    auto out = st.session->pending_output();
    if (out.empty()) return Step::done(st.fail(errc::handshake_failed, st.hs_error->message));
    phase_ = Phase::flushing_error;  // the alert that explains the failure, best effort
    return write_out(Step::Kind::write_all, boost::asio::buffer(out.data(), out.size()));
  }
  done_ = step->done;
  read_bytes_ = step->read_bytes;
  auto out = st.session->pending_output();
  if (!out.empty()) {
    // Nothing else touches the Session during the handshake, so its buffer stays put.
    phase_ = Phase::flushing;
    return write_out(Step::Kind::write_all, boost::asio::buffer(out.data(), out.size()));
  }
  return after_flush(s);
}

Step HandshakeOp::after_flush(Stream& s) {
  State& st = *s.state_;
  if (done_) return finish(s);
  const std::size_t want = std::min(read_bytes_, st.hs_buf.size());
  if (want == 0) {
    st.phase = State::Phase::failed;
    return Step::done(st.fail(errc::handshake_failed,
                              "TLS handshake stalled: OpenSSL neither done nor reading"));
  }
  // Exactly what the Session asks for, so no byte past its last record leaves the kernel.
  phase_ = Phase::reading;
  return read_into(boost::asio::buffer(st.hs_buf.data(), want));
}

Step HandshakeOp::resume(Stream& s, boost::system::error_code ec, std::size_t n) {
  State& st = *s.state_;
  switch (phase_) {
    case Phase::flushing_error:
      return Step::done(st.fail(errc::handshake_failed, st.hs_error->message));
    case Phase::flushing:
      if (ec) {
        st.phase = State::Phase::failed;
        return Step::done(st.socket_error(ec, "TLS handshake: sending"));
      }
      st.session->consume_output(n);
      return after_flush(s);
    case Phase::reading:
      if (ec == boost::asio::error::eof) {
        st.phase = State::Phase::failed;
        return Step::done(
            st.fail(errc::handshake_failed, "TLS handshake failed: peer closed the connection"));
      }
      if (ec) {
        st.phase = State::Phase::failed;
        return Step::done(st.socket_error(ec, "TLS handshake: receiving"));
      }
      st.session->feed(std::span(st.hs_buf.data(), n));
      return advance(s);
  }
  return Step::done(st.fail(errc::handshake_failed, "TLS handshake: bad state"));
}

Step HandshakeOp::finish(Stream& s) {
  State& st = *s.state_;
  st.info = st.session->info();
  auto h = hand_over(s.socket_.native_handle(), *st.session, *st.backend);
  if (!h) {
    st.phase = State::Phase::failed;
    const bool broken = h.error().message.rfind("kernel TLS install failed half-way", 0) == 0;
    return Step::done(st.fail(broken ? errc::kernel_install_failed : errc::backend_unavailable,
                              h.error().message));
  }
  st.transport = h->transport;
  st.reason = std::move(h->reason);
  if (h->transport == Transport::kernel) {
    st.keys = std::make_shared<TrafficKeys>(std::move(*h->keys));
    st.kio = std::make_unique<KernelRecordIo>(
        s.socket_.native_handle(),
        record_io_config(st.keys, kernel_probe().rekey.ok, st.options.tx_record_limit));
    st.session.reset();
  }
  st.hs_buf = {};
  st.phase = State::Phase::established;
  return Step::done({});
}

// ---- the userspace transport's single writer ----------------------------------------------

Step TxFlush::begin(Stream& s, bool may_leave) {
  State& st = *s.state_;
  active_ = true;
  st.queue_output();
  if (may_leave && st.tx_busy && !writer_) {
    // The operation writing now drains the queue, our bytes included, before it completes.
    active_ = false;
    return Step::done({});
  }
  return write_next(s);
}

Step TxFlush::write_next(Stream& s) {
  State& st = *s.state_;
  if (writer_) {
    st.tx_inflight.clear();
    st.queue_output();
    if (st.tx_queue.empty()) {
      writer_ = false;
      st.tx_busy = false;
      s.tx_idle_.cancel();
      active_ = false;
      return Step::done({});
    }
  } else {
    if (st.tx_error) {
      active_ = false;
      return Step::done(st.tx_error);
    }
    if (st.tx_queue.empty()) {
      active_ = false;
      return Step::done({});
    }
    if (st.tx_busy) {
      waiting_ = true;
      return just(Step::Kind::wait_tx_idle);
    }
    writer_ = true;
    st.tx_busy = true;
  }
  st.tx_inflight.swap(st.tx_queue);
  st.tx_queue.clear();
  return write_out(Step::Kind::write_all,
                   boost::asio::buffer(st.tx_inflight.data(), st.tx_inflight.size()));
}

Step TxFlush::resume(Stream& s, boost::system::error_code ec) {
  State& st = *s.state_;
  if (waiting_) {
    waiting_ = false;  // woken by the writer's cancel(): look again
    return write_next(s);
  }
  if (ec) {
    st.tx_error = ec;
    st.tx_inflight.clear();
    st.tx_queue.clear();
    writer_ = false;
    st.tx_busy = false;
    s.tx_idle_.cancel();
    active_ = false;
    return Step::done(st.socket_error(ec, "TLS write"));
  }
  return write_next(s);
}

// ---- read -----------------------------------------------------------------------------------

Step ReadOp::start(Stream& s) {
  State& st = *s.state_;
  if (st.phase != State::Phase::established) return not_established(st);
  if (buf_.size() == 0) return Step::done({}, 0);
  if (st.rx_dead) return Step::done(*st.rx_dead);
  if (st.transport == Transport::userspace) return user_read(s);
  if (st.kio->peer_closed()) return Step::done(boost::asio::error::eof);
  std::span<std::uint8_t> buf(static_cast<std::uint8_t*>(buf_.data()), buf_.size());
  if (std::size_t n = st.kio->take_pending(buf); n > 0) {
    st.bytes_read += n;
    return Step::done({}, n);
  }
  phase_ = Phase::socket_read;
  return read_into(buf_);
}

Step ReadOp::resume(Stream& s, boost::system::error_code ec, std::size_t n) {
  State& st = *s.state_;
  if (st.transport == Transport::kernel) {
    if (phase_ == Phase::wait_readable) {
      if (ec) return Step::done(st.socket_error(ec, "kTLS: waiting for a control record"));
      return kernel_result(s, -EIO);
    }
    if (!ec) return kernel_result(s, static_cast<long>(n));
    if (ec == boost::asio::error::eof) return kernel_result(s, 0);
    // EIO (a control record is next) and the record layer's own errors go to the record
    // layer; socket errors (reset, cancelled) keep their code.
    if (is_system(ec) && (ec.value() == EIO || record_layer_failure(ec.value())))
      return kernel_result(s, -static_cast<long>(ec.value()));
    return Step::done(st.socket_error(ec, "kTLS recv"));
  }

  if (phase_ == Phase::flushing) {
    Step f = flush_.resume(s, ec);
    if (f.kind != Step::Kind::complete) return f;
    return user_deliver(s);
  }
  if (ec == boost::asio::error::eof) {
    st.rx_dead = boost::asio::ssl::error::stream_truncated;
    return Step::done(st.fail(*st.rx_dead,
                              "peer closed the connection without close_notify (truncation)"));
  }
  if (ec) return Step::done(st.socket_error(ec, "TLS recv"));
  st.session->commit_input(n);
  return user_read(s);
}

Step ReadOp::kernel_result(Stream& s, long result) {
  State& st = *s.state_;
  std::span<std::uint8_t> buf(static_cast<std::uint8_t*>(buf_.data()), buf_.size());
  auto r = st.kio->complete_recv(result, buf);
  if (!r) {
    const Error& e = r.error();
    if (!st.kio->dead()) {
      if (result == -EIO && (e.sys_errno == EAGAIN || e.sys_errno == EWOULDBLOCK)) {
        // The record was not whole yet: wait for it, then recvmsg again.
        phase_ = Phase::wait_readable;
        return just(Step::Kind::wait_readable);
      }
      return Step::done(st.fail(e.sys_errno != 0 ? boost::system::error_code(
                                                       e.sys_errno, boost::system::system_category())
                                                 : make_error_code(errc::tls_error),
                                e.message));
    }
    const bool truncated = e.message.find("(truncation)") != std::string::npos;
    st.rx_dead = truncated ? boost::system::error_code(boost::asio::ssl::error::stream_truncated)
                           : make_error_code(errc::tls_error);
    return Step::done(st.fail(*st.rx_dead, e.message));
  }
  if (!*r) {  // a control record was consumed (ticket, ...): receive again
    phase_ = Phase::socket_read;
    if (std::size_t n = st.kio->take_pending(buf); n > 0) {
      st.bytes_read += n;
      return Step::done({}, n);
    }
    return read_into(buf_);
  }
  if ((*r)->kind == RecvResult::Kind::end_of_stream) {
    st.peer_closed = true;
    return Step::done(st.fail(boost::asio::error::eof, "peer sent close_notify"));
  }
  st.bytes_read += (*r)->bytes;
  return Step::done({}, (*r)->bytes);
}

Step ReadOp::user_read(Stream& s) {
  State& st = *s.state_;
  if (st.peer_closed) return Step::done(boost::asio::error::eof);
  std::span<std::uint8_t> buf(static_cast<std::uint8_t*>(buf_.data()), buf_.size());
  saved_ = st.session->read_plaintext(buf);
  // Reading can make OpenSSL answer (a KeyUpdate, an alert): that goes out first.
  if (!st.session->pending_output().empty()) {
    phase_ = Phase::flushing;
    Step f = flush_.begin(s, /*may_leave=*/true);
    if (f.kind != Step::Kind::complete) return f;
  }
  return user_deliver(s);
}

Step ReadOp::user_deliver(Stream& s) {
  State& st = *s.state_;
  Result<ReadResult> r = std::move(*saved_);
  saved_.reset();
  if (!r) {
    st.rx_dead = make_error_code(errc::tls_error);
    return Step::done(st.fail(*st.rx_dead, r.error().message));
  }
  switch (r->kind) {
    case ReadResult::Kind::data:
      st.bytes_read += r->bytes;
      return Step::done({}, r->bytes);
    case ReadResult::Kind::eof:
      st.peer_closed = true;
      return Step::done(st.fail(boost::asio::error::eof, "peer sent close_notify"));
    case ReadResult::Kind::need_input:
      break;
  }
  phase_ = Phase::socket_read;
  // Ciphertext lands in the session's own input buffer: OpenSSL reads it from there.
  auto space = st.session->input_space(kRecvChunk);
  return read_into(boost::asio::buffer(space.data(), space.size()));
}

// ---- write ----------------------------------------------------------------------------------

Step WriteOp::start(Stream& s) {
  State& st = *s.state_;
  if (st.phase != State::Phase::established) return not_established(st);
  if (st.close_sent)
    return Step::done(st.fail(errc::shut_down, "write after close_notify (async_shutdown)"));
  if (buf_.size() == 0) return Step::done({}, 0);
  if (st.transport == Transport::kernel) {
    if (st.kio->dead()) return Step::done(st.fail(errc::tls_error, st.kio->dead()->message));
    chunk_ = st.kio->sendable_bytes(buf_.size());
    if (chunk_ == 0) {
      if (Status l = st.kio->at_record_limit(); !l)
        return Step::done(st.fail(errc::tls_error, l.error().message));
      chunk_ = st.kio->sendable_bytes(buf_.size());
      if (chunk_ == 0)
        return Step::done(st.fail(errc::tls_error, "no record budget after rekeying TX"));
    }
    return write_out(Step::Kind::write_some, boost::asio::buffer(buf_.data(), chunk_));
  }
  if (st.tx_error) return Step::done(st.tx_error);
  chunk_ = std::min(buf_.size(), kWriteChunk);
  auto w = st.session->write_plaintext(
      std::span(static_cast<const std::uint8_t*>(buf_.data()), chunk_));
  if (!w) return Step::done(st.fail(errc::tls_error, w.error().message));
  Step f = flush_.begin(s, /*may_leave=*/false);
  if (f.kind == Step::Kind::complete) {
    if (f.ec) return Step::done(f.ec, 0);
    st.bytes_written += chunk_;
    return Step::done({}, chunk_);
  }
  return f;
}

Step WriteOp::resume(Stream& s, boost::system::error_code ec, std::size_t n) {
  State& st = *s.state_;
  if (st.transport == Transport::kernel) {
    if (ec) return Step::done(st.socket_error(ec, "kTLS send"), 0);
    st.kio->complete_send(n);
    st.bytes_written += n;
    return Step::done({}, n);
  }
  Step f = flush_.resume(s, ec);
  if (f.kind != Step::Kind::complete) return f;
  if (f.ec) return Step::done(f.ec, 0);
  st.bytes_written += chunk_;
  return Step::done({}, chunk_);
}

// ---- shutdown -------------------------------------------------------------------------------

Step ShutdownOp::start(Stream& s) {
  State& st = *s.state_;
  if (st.phase != State::Phase::established) return not_established(st);
  if (st.close_sent) return Step::done({});
  if (st.transport == Transport::kernel) {
    if (st.kio->dead()) return Step::done(st.fail(errc::tls_error, st.kio->dead()->message));
    return kernel_send(s);
  }
  st.close_sent = true;
  if (Status c = st.session->shutdown(); !c)
    return Step::done(st.fail(errc::tls_error, c.error().message));
  Step f = flush_.begin(s, /*may_leave=*/false);
  if (f.kind != Step::Kind::complete) return f;
  if (f.ec) return f;
  return finish(s);
}

Step ShutdownOp::kernel_send(Stream& s) {
  State& st = *s.state_;
  static constexpr std::uint8_t kCloseNotify[2] = {alert_level::warning,
                                                   alert_desc::close_notify};
  Status sent = st.kio->send_control_record(content_type::alert, kCloseNotify);
  if (!sent) {
    const int err = sent.error().sys_errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return just(Step::Kind::wait_writable);
    return Step::done(st.fail(err != 0 ? boost::system::error_code(
                                             err, boost::system::system_category())
                                       : make_error_code(errc::tls_error),
                              sent.error().message));
  }
  st.close_sent = true;
  return finish(s);
}

Step ShutdownOp::finish(Stream& s) {
  State& st = *s.state_;
  st.close_sent = true;
  // ENOTCONN: the peer has already reset the connection; there is no write side left.
  if (::shutdown(s.socket_.native_handle(), SHUT_WR) != 0 && errno != ENOTCONN) {
    const int err = errno;
    return Step::done(st.fail(boost::system::error_code(err, boost::system::system_category()),
                              std::string("shutdown(SHUT_WR): ") + std::strerror(err)));
  }
  return Step::done({});
}

Step ShutdownOp::resume(Stream& s, boost::system::error_code ec, std::size_t) {
  State& st = *s.state_;
  if (st.transport == Transport::kernel) {
    if (ec) return Step::done(st.socket_error(ec, "kTLS: waiting to send close_notify"));
    return kernel_send(s);
  }
  Step f = flush_.resume(s, ec);
  if (f.kind != Step::Kind::complete) return f;
  if (f.ec) return f;
  return finish(s);
}

}  // namespace detail

// ---- Stream ---------------------------------------------------------------------------------

void Stream::init(TlsContext ctx, StreamOptions options) {
  state_.reset(new detail::State(std::move(ctx), std::move(options)));
  state_->backend = state_->options.backend ? Result<Backend>(*state_->options.backend)
                                            : backend_from_environment();
  tx_idle_.expires_at(boost::asio::steady_timer::time_point::max());
}

Stream::Stream(Stream&&) noexcept = default;
Stream& Stream::operator=(Stream&&) noexcept = default;
Stream::~Stream() = default;

void Stream::set_server_name(std::string name) { state_->options.server_name = std::move(name); }
Transport Stream::transport() const { return state_->transport; }
const std::string& Stream::transport_reason() const { return state_->reason; }
const HandshakeInfo& Stream::info() const { return state_->info; }
std::uint64_t Stream::bytes_read() const { return state_->bytes_read; }
std::uint64_t Stream::bytes_written() const { return state_->bytes_written; }
const std::string& Stream::last_error() const { return state_->last_error; }

}  // namespace wasi_ktls::asio
