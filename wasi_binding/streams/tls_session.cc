#include "wasi_binding/streams/tls_session.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>

#include "ktls/conn/perform.h"
#include "wasi_binding/streams/socket_space.h"

namespace wasi_ktls::wasi {
namespace {

// Plaintext per write on the userspace transport is encrypted in chunks of this size by the
// core: a permit no larger keeps guest writes out of the host buffer there too.
constexpr std::uint64_t kUserspacePermit = 256 * 1024;
constexpr std::uint64_t kKernelPermit = 4 << 20;

}  // namespace

struct TlsSession::Transport {
  SharedFd fd;                          // the socket, or null
  std::unique_ptr<InputStream> in;      // otherwise these
  std::unique_ptr<OutputStream> out;

  bool on_socket() const { return fd != nullptr; }
};

Result<std::shared_ptr<TlsSession>> TlsSession::on_socket(const TlsContext& ctx,
                                                          std::string server_name, SharedFd fd,
                                                          const ConnectionOptions& options) {
  auto core = ConnectionCore::client(ctx, server_name, options);
  if (!core) return core.error();
  auto t = std::make_unique<Transport>();
  t->fd = std::move(fd);
  return std::shared_ptr<TlsSession>(
      new TlsSession(std::move(*core), std::move(t), std::move(server_name), options, ""));
}

Result<std::shared_ptr<TlsSession>> TlsSession::on_streams(
    const TlsContext& ctx, std::string server_name, std::unique_ptr<InputStream> in,
    std::unique_ptr<OutputStream> out, const ConnectionOptions& options, std::string why) {
  if (options.backend == Backend::ktls)
    return Error{"backend ktls requested but " + why, 0, ErrorKind::backend_unavailable};
  ConnectionOptions o = options;
  o.backend = Backend::userspace;
  auto core = ConnectionCore::client(ctx, server_name, o);
  if (!core) return core.error();
  auto t = std::make_unique<Transport>();
  t->in = std::move(in);
  t->out = std::move(out);
  return std::shared_ptr<TlsSession>(
      new TlsSession(std::move(*core), std::move(t), std::move(server_name), o, std::move(why)));
}

TlsSession::TlsSession(ConnectionCore core, std::unique_ptr<Transport> t, std::string server_name,
                       const ConnectionOptions& options, std::string forced_reason)
    : core_(std::move(core)),
      transport_(std::move(t)),
      server_name_(std::move(server_name)),
      options_(options),
      forced_reason_(std::move(forced_reason)),
      hs_deadline_(Clock::now() + options.handshake_timeout) {
  if (Status s = core_.handshake(); !s) {
    hs_over_ = true;
    hs_error_ = s.error();
  }
}

TlsSession::~TlsSession() = default;

// ---- steps ---------------------------------------------------------------------------------

long TlsSession::perform(const Step& s) {
  if (transport_->on_socket()) return perform_now(transport_->fd->get(), s);
  switch (s.kind) {
    case Step::Kind::send: {
      StreamResult p = transport_->out->check_write();
      if (p.kind == StreamResult::Kind::closed) return -EPIPE;
      if (p.kind == StreamResult::Kind::failed) return -EIO;
      if (p.n == 0) return -EAGAIN;
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(p.n, s.out.size()));
      StreamResult w = transport_->out->write(s.out.first(n));
      if (!w.is_ok()) return w.kind == StreamResult::Kind::closed ? -EPIPE : -EIO;
      (void)transport_->out->flush();
      return static_cast<long>(n);
    }
    case Step::Kind::recv: {
      StreamResult r = transport_->in->read(s.in);
      if (r.kind == StreamResult::Kind::closed) return 0;
      if (r.kind == StreamResult::Kind::failed) return -EIO;
      return r.n == 0 ? -EAGAIN : static_cast<long>(r.n);
    }
    case Step::Kind::shutdown_write:
      return 0;  // the guest's stream stays its transport's; close_notify is what it gets
    default:
      return -EOPNOTSUPP;  // kernel steps: never asked of a userspace-only core
  }
}

bool TlsSession::drive(Lane lane) {
  for (;;) {
    const Step& s = core_.step(lane);
    if (s.done()) return true;
    const long r = perform(s);
    core_.complete(lane, r);
    if (r == -EAGAIN && !core_.step(lane).done()) return false;  // the step waits for the socket
  }
}

Wait TlsSession::step_wait(Lane lane) const {
  const Step& s = core_.step(lane);
  const short ev = s.done() ? POLLOUT : s.poll_events();
  if (transport_->on_socket()) return Wait::on(transport_->fd->get(), ev);
  if (ev == POLLIN) return transport_->in->wait();
  return transport_->out->wait();
}

// ---- handshake -----------------------------------------------------------------------------

bool TlsSession::handshake_done() {
  if (hs_over_) return true;
  if (!drive(Lane::write)) {
    if (Clock::now() < hs_deadline_) return false;
    core_.complete(Lane::write, -ETIMEDOUT);
    (void)drive(Lane::write);
  }
  hs_over_ = true;
  Result<std::size_t> r = core_.take_result(Lane::write);
  if (!r) hs_error_ = r.error();
  return true;
}

Wait TlsSession::handshake_wait() const {
  Wait w = step_wait(Lane::write);
  w.deadline = hs_deadline_;
  return w;
}

std::string TlsSession::describe() const {
  const HandshakeInfo& i = core_.info();
  const bool kernel = core_.transport() == wasi_ktls::Transport::kernel;
  std::string why = forced_reason_.empty() ? core_.transport_reason() : forced_reason_;
  return fmt::format("server={} version={} suite={} alpn={} backend={}{}", server_name_,
                     i.version == TlsVersion::tls13 ? "TLSv1.3" : "TLSv1.2", i.suite,
                     i.alpn.empty() ? "-" : i.alpn, kernel ? "ktls" : "userspace",
                     why.empty() ? std::string(" (kernel took the keys)") : " (" + why + ")");
}

// ---- read side -----------------------------------------------------------------------------

StreamResult TlsSession::read(std::span<std::uint8_t> into) {
  if (into.empty()) {  // where the stream is, without reading
    if (probed_) return StreamResult::ok_n(0);
    if (read_error_) return StreamResult::failed(*read_error_);
    return eof_ ? StreamResult::closed() : StreamResult::ok_n(0);
  }
  std::size_t got = 0;
  if (probed_ && !into.empty()) {
    into[0] = probe_byte_;
    probed_ = false;
    got = 1;
    into = into.subspan(1);
  }
  if (!into.empty() && !eof_ && !read_error_) {
    if (Status s = core_.read_now(into); !s) {
      read_error_ = s.error().message;
    } else {
      (void)drive(Lane::read);  // a read that must not wait always ends here
      Result<std::size_t> r = core_.take_result(Lane::read);
      if (r && *r == 0) eof_ = true;
      else if (r) got += *r;
      else if (r.error().kind != ErrorKind::would_block) read_error_ = r.error().message;
    }
    // What the read left for the write side (an alert, a KeyUpdate) goes out now if it can.
    (void)progress_writes();
  }
  if (got > 0) return StreamResult::ok_n(got);
  if (read_error_) return StreamResult::failed(*read_error_);
  if (eof_) return StreamResult::closed();
  return StreamResult::ok_n(0);
}

bool TlsSession::readable() {
  if (probed_ || eof_ || read_error_) return true;
  StreamResult r = read(std::span(&probe_byte_, 1));
  if (r.is_ok() && r.n == 1) probed_ = true;
  return probed_ || eof_ || read_error_;
}

Wait TlsSession::read_wait() const {
  if (!transport_->on_socket()) return transport_->in->wait();
  return Wait::on(transport_->fd->get(), POLLIN);
}

// ---- write side ----------------------------------------------------------------------------

void TlsSession::fail_writes(const Error& e) {
  write_error_ = e.message;
  pending_.consume(pending_.size());
  lane_busy_ = false;
}

bool TlsSession::progress_writes() {
  if (!hs_over_ || hs_error_ || write_error_) return false;
  if (!transport_->on_socket()) (void)transport_->out->flush();
  for (;;) {
    if (lane_busy_) {
      if (!drive(Lane::write)) {
        if (Clock::now() < write_deadline_) return true;
        core_.complete(Lane::write, -ETIMEDOUT);
        (void)drive(Lane::write);
      }
      lane_busy_ = false;
      Result<std::size_t> r = core_.take_result(Lane::write);
      if (!r) {
        fail_writes(r.error());
        return false;
      }
      if (close_started_) close_done_ = true;
      continue;
    }
    if (!pending_.empty()) {
      if (Status s = core_.write_now(pending_.readable()); !s) {
        fail_writes(s.error());
        return false;
      }
      (void)drive(Lane::write);
      Result<std::size_t> r = core_.take_result(Lane::write);
      if (!r) {
        fail_writes(r.error());
        return false;
      }
      pending_.consume(*r);
      if (!pending_.empty()) return true;
      continue;
    }
    if (core_.owes_writes()) {
      if (Status s = core_.flush(false); !s) return false;
      (void)drive(Lane::write);
      Result<std::size_t> r = core_.take_result(Lane::write);
      if (!r) {
        fail_writes(r.error());
        return false;
      }
      if (core_.owes_writes()) return true;
      continue;
    }
    if (close_requested_ && !close_started_) {
      close_started_ = true;
      if (Status s = core_.close(); !s) {
        fail_writes(s.error());
        return false;
      }
      lane_busy_ = true;
      write_deadline_ = Clock::now() + options_.io_timeout;
      continue;
    }
    if (!transport_->on_socket() && !transport_->out->flushed()) return true;
    return false;
  }
}

StreamResult TlsSession::write_failure() const {
  if (write_error_) return StreamResult::failed(*write_error_);
  return StreamResult::closed();
}

StreamResult TlsSession::check_write() {
  const bool busy = progress_writes();
  if (write_error_) return write_failure();
  if (close_requested_) return close_done_ ? StreamResult::closed() : StreamResult::ok_n(0);
  if (busy) return StreamResult::ok_n(0);
  if (!transport_->on_socket()) {
    StreamResult p = transport_->out->check_write();
    if (!p.is_ok()) return p;
    return StreamResult::ok_n(std::min(p.n, kUserspacePermit));
  }
  const bool kernel = core_.transport() == wasi_ktls::Transport::kernel;
  return StreamResult::ok_n(
      socket_send_space(transport_->fd->get(), kernel ? kKernelPermit : kUserspacePermit));
}

StreamResult TlsSession::write(std::span<const std::uint8_t> data) {
  if (write_error_) return write_failure();
  if (close_requested_) return StreamResult::closed();
  std::size_t taken = 0;
  if (pending_.empty() && !lane_busy_ && !data.empty()) {
    // Straight from the caller's (the guest's) memory to the socket.
    if (Status s = core_.write_now(data); !s) {
      fail_writes(s.error());
      return write_failure();
    }
    (void)drive(Lane::write);
    Result<std::size_t> r = core_.take_result(Lane::write);
    if (!r) {
      fail_writes(r.error());
      return write_failure();
    }
    taken = *r;
  }
  pending_.append(data.subspan(taken));
  return StreamResult::ok_n(data.size());
}

bool TlsSession::write_idle() { return !progress_writes(); }

Wait TlsSession::write_wait() const {
  if (lane_busy_) return step_wait(Lane::write);
  if (!transport_->on_socket()) return transport_->out->wait();
  return Wait::on(transport_->fd->get(), POLLOUT);
}

void TlsSession::close_output() {
  close_requested_ = true;
  (void)progress_writes();
}

}  // namespace wasi_ktls::wasi
