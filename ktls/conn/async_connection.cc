#include "ktls/conn/async_connection.h"

#include <cerrno>

#include "ktls/conn/perform.h"
#include "ktls/conn/record_path.h"

namespace wasi_ktls {

AsyncConnection::AsyncConnection(Engine& engine, UniqueFd fd, ConnectionCore core,
                                 const ConnectionOptions& options)
    : engine_(engine), fd_(std::move(fd)), options_(options), core_(std::move(core)) {}

AsyncConnection::~AsyncConnection() = default;

void AsyncConnection::connect(Engine& engine, UniqueFd tcp, const TlsContext& ctx,
                              std::string server_name, const ConnectionOptions& options,
                              Established done) {
  start(engine, std::move(tcp), ConnectionCore::client(ctx, server_name, options), options,
        std::move(done));
}

void AsyncConnection::accept(Engine& engine, UniqueFd tcp, const TlsContext& ctx,
                             const ConnectionOptions& options, Established done) {
  start(engine, std::move(tcp), ConnectionCore::server(ctx, options), options, std::move(done));
}

void AsyncConnection::start(Engine& engine, UniqueFd fd, Result<ConnectionCore> core,
                            const ConnectionOptions& options, Established done) {
  if (!core) return done(core.error());
  auto self = std::make_shared<AsyncConnection>(engine, std::move(fd), std::move(*core), options);
  self->handshake_deadline_ = Clock::now() + options.handshake_timeout;
  self->handshaking_ = true;
  self->begin(Lane::write, [self] { return self->core_.handshake(); },
              [self, done = std::move(done)](Result<std::size_t> r) {
                self->handshaking_ = false;
                if (!r) return done(r.error());
                done(self);
              });
}

void AsyncConnection::begin(Lane lane, const std::function<Status()>& start, IoDone done) {
  if (aborted_) return done(Error{"connection aborted", ECANCELED, ErrorKind::cancelled});
  if (lane == Lane::write && flushing_ && !after_flush_) {
    // Our own flush holds the write side for a moment: the caller's operation follows it.
    after_flush_ = [self = shared_from_this(), start, done = std::move(done)]() mutable {
      self->begin(Lane::write, start, std::move(done));
    };
    return;
  }
  if (Status st = start(); !st) return done(st.error());
  done_[static_cast<int>(lane)] = std::move(done);
  drive(lane);
}

void AsyncConnection::drive(Lane lane) {
  auto self = shared_from_this();
  for (;;) {
    const Step& s = core_.step(lane);
    if (s.done()) break;
    if (!s.may_wait()) {
      core_.complete(lane, perform_now(fd_.get(), s));
      continue;
    }
    if (aborted_) {
      core_.complete(lane, -ECANCELED);
      continue;
    }
    const Clock::time_point deadline =
        handshaking_ ? handshake_deadline_ : Clock::now() + options_.io_timeout;
    auto on_done = [self, lane](int r) {
      // An engine reports its deadline as -ETIME; the core speaks errno.
      self->core_.complete(lane, r == -ETIME ? -ETIMEDOUT : r);
      self->drive(lane);
    };
    Status started;
    switch (s.kind) {
      case Step::Kind::send:
        started = engine_.send(fd_.get(), s.out, MSG_NOSIGNAL, deadline, std::move(on_done));
        break;
      case Step::Kind::recv:
        started = engine_.recv(fd_.get(), s.in, 0, deadline, std::move(on_done));
        break;
      case Step::Kind::recvmsg:
        started = engine_.recvmsg(fd_.get(), s.msg, 0, deadline, std::move(on_done));
        break;
      case Step::Kind::sendmsg:
        started = engine_.sendmsg(fd_.get(), s.msg, MSG_NOSIGNAL, deadline, std::move(on_done));
        break;
      default:  // splice
        started = engine_.send_file(fd_.get(), s.file, s.offset, s.len, deadline,
                                    std::move(on_done));
        break;
    }
    if (started) return;  // the engine calls back
    // The engine cannot take it (its queue is full, or it is shutting down).
    core_.complete(lane, -(started.error().sys_errno != 0 ? started.error().sys_errno : EBUSY));
  }

  const int i = static_cast<int>(lane);
  Result<std::size_t> r = core_.take_result(lane);
  IoDone done = std::move(done_[i]);
  done_[i] = nullptr;
  if (lane == Lane::write && flushing_) {
    flushing_ = false;
    if (after_flush_) {
      auto next = std::move(after_flush_);
      after_flush_ = nullptr;
      next();
    }
  } else if (done) {
    done(std::move(r));
  }
  flush_owed();
}

void AsyncConnection::flush_owed() {
  if (flushing_ || !core_.owes_writes()) return;
  if (!core_.flush()) return;
  flushing_ = true;
  drive(Lane::write);
}

void AsyncConnection::read(std::span<std::uint8_t> buf, IoDone done) {
  begin(Lane::read, [this, buf] { return core_.read(buf); }, std::move(done));
}

Result<std::size_t> AsyncConnection::read_now(std::span<std::uint8_t> buf) {
  if (aborted_) return Error{"connection aborted", ECANCELED, ErrorKind::cancelled};
  if (Status st = core_.read_now(buf); !st) return st.error();
  // A read that must not wait ends at the first step that would block: every step is done now.
  for (const Step* s = &core_.step(Lane::read); !s->done(); s = &core_.step(Lane::read))
    core_.complete(Lane::read, perform_now(fd_.get(), *s));
  Result<std::size_t> r = core_.take_result(Lane::read);
  flush_owed();
  return r;
}

void AsyncConnection::wait_readable(Done done) {
  wait_readable(Clock::now() + options_.io_timeout, std::move(done));
}

void AsyncConnection::wait_readable(Clock::time_point deadline, Done done) {
  if (aborted_) return done(Error{"connection aborted", ECANCELED, ErrorKind::cancelled});
  // A peek, not a poll: on a kTLS socket poll says POLLIN as soon as part of a record has
  // arrived, where read_now() would still find nothing (and a poll loop would spin until the
  // rest came); a peek completes when the kernel holds a whole record (decrypted and kept for
  // the next read), a control record (EIO), the end of the stream or an error, all of which
  // read_now() then reports. On plain TCP (userspace TLS) it completes with the first byte.
  Status started = engine_.recv(
      fd_.get(), std::span(&peeked_, 1), MSG_PEEK, deadline,
      [self = shared_from_this(), done, waited = deadline - Clock::now()](int r) {
        if (r == -ETIME || r == -ECANCELED)
          return done(step_error(
              r, "waiting to read",
              std::chrono::ceil<std::chrono::milliseconds>(waited)));
        done(Status{});
      });
  if (!started) done(started.error());
}

void AsyncConnection::write(std::span<const std::uint8_t> data, IoDone done) {
  begin(Lane::write, [this, data] { return core_.write(data); }, std::move(done));
}

void AsyncConnection::send_file(int file, std::uint64_t offset, std::uint64_t len, IoDone done) {
  begin(Lane::write, [this, file, offset, len] { return core_.send_file(file, offset, len); },
        std::move(done));
}

void AsyncConnection::close(Done done) {
  begin(Lane::write, [this] { return core_.close(); },
        [done = std::move(done)](Result<std::size_t> r) {
          done(r ? Status{} : Status(r.error()));
        });
}

void AsyncConnection::abort() {
  aborted_ = true;
  engine_.cancel(fd_.get());
}

}  // namespace wasi_ktls
