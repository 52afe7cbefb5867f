#include "ktls/conn/async_connection.h"

#include "ktls/conn/async_data_path.h"
#include "ktls/conn/handover.h"
#include "ktls/probe/probe.h"
#include "ktls/io/socket_io.h"

namespace wasi_ktls {
namespace {

// A record's worth, and then some: the largest read a handshake asks for.
constexpr std::size_t kHandshakeReadMax = 16384 + 2048;

Error op_error(int result, const char* what, std::chrono::milliseconds timeout) {
  if (result == -ETIME)
    return Error{fmt::format("{} timed out after {} ms", what, timeout.count()), ETIMEDOUT};
  if (result == -ECANCELED) return Error{fmt::format("{} cancelled", what), ECANCELED};
  return errno_error(-result, what);
}

}  // namespace

AsyncConnection::AsyncConnection(Engine& engine, UniqueFd fd, ConnectionOptions options)
    : engine_(engine), fd_(std::move(fd)), options_(options) {}

AsyncConnection::~AsyncConnection() = default;

void AsyncConnection::connect(Engine& engine, UniqueFd tcp, const TlsContext& ctx,
                              std::string server_name, const ConnectionOptions& options,
                              Established done) {
  auto self = std::make_shared<AsyncConnection>(engine, std::move(tcp), options);
  start(std::move(self), Session::client(ctx, server_name), std::move(done));
}

void AsyncConnection::accept(Engine& engine, UniqueFd tcp, const TlsContext& ctx,
                             const ConnectionOptions& options, Established done) {
  auto self = std::make_shared<AsyncConnection>(engine, std::move(tcp), options);
  start(std::move(self), Session::server(ctx), std::move(done));
}

void AsyncConnection::start(Ptr self, Result<Session> session, Established done) {
  if (!session) return done(session.error());
  // Control records (alerts, close_notify) are small synchronous sends on the kernel path:
  // the socket's own timeouts bound them.
  if (auto st = set_socket_timeouts(self->fd_.get(), self->options_.io_timeout); !st)
    return done(st.error());
  self->session_.emplace(std::move(*session));
  self->established_ = std::move(done);
  self->handshake_deadline_ = Clock::now() + self->options_.handshake_timeout;
  self->hs_in_.resize(kHandshakeReadMax);
  self->handshake_step();
}

Clock::time_point AsyncConnection::io_deadline() const {
  return Clock::now() + options_.io_timeout;
}

void AsyncConnection::handshake_failed(Error e) {
  auto done = std::move(established_);
  established_ = nullptr;
  if (done) done(std::move(e));
}

void AsyncConnection::handshake_flush(std::function<void()> then) {
  if (session_->pending_output().empty()) return then();
  session_->take_output(hs_out_);
  auto self = shared_from_this();
  // Handshake flights are small: one send normally takes them; a short send sends the rest.
  auto send_rest = std::make_shared<std::function<void(std::size_t)>>();
  *send_rest = [self, then = std::move(then), send_rest](std::size_t off) {
    auto out = std::span<const std::uint8_t>(self->hs_out_).subspan(off);
    Status st = self->engine_.send(
        self->fd_.get(), out, MSG_NOSIGNAL, self->handshake_deadline_,
        [self, then, send_rest, off](int r) {
          if (r < 0) {
            (*send_rest) = nullptr;  // break the cycle
            return self->handshake_failed(
                op_error(r, "send during the TLS handshake", self->options_.handshake_timeout));
          }
          std::size_t next = off + static_cast<std::size_t>(r);
          if (next < self->hs_out_.size()) return (*send_rest)(next);
          (*send_rest) = nullptr;
          then();
        });
    if (!st) {
      (*send_rest) = nullptr;
      self->handshake_failed(st.error());
    }
  };
  (*send_rest)(0);
}

void AsyncConnection::handshake_step() {
  auto step = session_->advance();
  auto self = shared_from_this();
  if (!step) {
    Error e = step.error();
    return handshake_flush([self, e] { self->handshake_failed(e); });  // our alert goes first
  }
  hs_done_ = step->done;
  std::size_t want = std::min(step->read_bytes, hs_in_.size());
  handshake_flush([self, want] {
    if (self->hs_done_) {
      auto h = hand_over(self->fd_.get(), *self->session_, self->options_.backend);
      if (!h) return self->handshake_failed(h.error());
      self->info_ = self->session_->info();
      self->transport_ = h->transport;
      self->reason_ = std::move(h->reason);
      if (h->transport == Transport::kernel)
        self->data_ = std::make_unique<KernelDataPath>(*self, *h->keys, kernel_probe().rekey.ok);
      else
        self->data_ = std::make_unique<UserspaceDataPath>(*self, std::move(*self->session_));
      self->session_.reset();
      self->hs_in_ = {};
      self->hs_out_ = {};
      auto done = std::move(self->established_);
      self->established_ = nullptr;
      return done(self);
    }
    if (want == 0)
      return self->handshake_failed(make_error("TLS handshake stalled: OpenSSL neither done nor reading"));
    Status st = self->engine_.recv(
        self->fd_.get(), std::span(self->hs_in_.data(), want), 0, self->handshake_deadline_,
        [self](int r) {
          if (r < 0)
            return self->handshake_failed(op_error(r, "TLS handshake",
                                                   self->options_.handshake_timeout));
          if (r == 0)
            return self->handshake_failed(
                make_error("TLS handshake failed: peer closed the connection"));
          self->session_->feed(std::span(self->hs_in_.data(), static_cast<std::size_t>(r)));
          self->handshake_step();
        });
    if (!st) self->handshake_failed(st.error());
  });
}

void AsyncConnection::read(std::span<std::uint8_t> buf, IoDone done) {
  if (reading_) return done(make_error("a read is already in flight on this connection"));
  if (aborted_) return done(Error{"connection aborted", ECANCELED});
  reading_ = true;
  auto self = shared_from_this();
  data_->read(buf, [self, done = std::move(done)](Result<std::size_t> r) {
    self->reading_ = false;
    if (r) self->bytes_read_ += *r;
    done(std::move(r));
  });
}

void AsyncConnection::write(std::span<const std::uint8_t> data, IoDone done) {
  if (writing_) return done(make_error("a write is already in flight on this connection"));
  if (aborted_) return done(Error{"connection aborted", ECANCELED});
  writing_ = true;
  auto self = shared_from_this();
  data_->write(data, [self, done = std::move(done)](Result<std::size_t> r) {
    self->writing_ = false;
    if (r) self->bytes_written_ += *r;
    done(std::move(r));
  });
}

void AsyncConnection::send_file(int file, std::uint64_t offset, std::uint64_t len, IoDone done) {
  if (writing_) return done(make_error("a write is already in flight on this connection"));
  if (aborted_) return done(Error{"connection aborted", ECANCELED});
  writing_ = true;
  auto self = shared_from_this();
  data_->send_file(file, offset, len, [self, done = std::move(done)](Result<std::size_t> r) {
    self->writing_ = false;
    if (r) self->bytes_written_ += *r;
    done(std::move(r));
  });
}

void AsyncConnection::close(Done done) {
  if (writing_) return done(make_error("close while a write is in flight"));
  if (aborted_) return done(Error{"connection aborted", ECANCELED});
  data_->close(std::move(done));
}

void AsyncConnection::abort() {
  aborted_ = true;
  engine_.cancel(fd_.get());
}

}  // namespace wasi_ktls
