#include "ktls/conn/connection.h"

#include <cerrno>
#include <mutex>
#include <optional>

#include "ktls/conn/perform.h"
#include "ktls/io/socket_wait.h"

namespace wasi_ktls {

using Lane = ConnectionCore::Lane;

struct Connection::Impl {
  Impl(UniqueFd f, ConnectionCore c, const ConnectionOptions& o)
      : fd(std::move(f)), core(std::move(c)), options(o) {}

  UniqueFd fd;
  ConnectionCore core;
  ConnectionOptions options;
  std::mutex core_mutex;   // every call into the core; never held while waiting
  std::mutex read_mutex;   // one read at a time
  std::mutex write_mutex;  // one write-side operation at a time

  // Carries out the steps of the operation started on `lane` until it is done. Each wait is
  // bounded by `deadline` if given, else by the I/O timeout from its start; with `wait`
  // false a full socket is reported to the core instead (a flush that does not wait).
  Result<std::size_t> run(Lane lane, std::optional<Deadline> deadline = std::nullopt,
                          bool wait = true) {
    for (;;) {
      Step step;
      {
        std::lock_guard l(core_mutex);
        if (core.step(lane).done()) return core.take_result(lane);
        step = core.step(lane);  // its buffers belong to this lane's operation alone
      }
      long r = perform_now(fd.get(), step);
      if ((r == -EAGAIN || r == -EWOULDBLOCK) && wait) {
        Status ready = wait_ready(fd.get(), step.poll_events(),
                                  deadline ? *deadline : deadline_after(options.io_timeout));
        if (ready) continue;
        r = -ready.error().sys_errno;
      }
      std::lock_guard l(core_mutex);
      core.complete(lane, r);
    }
  }

  // A write-side operation: `start` begins it on the core.
  template <class Start>
  Result<std::size_t> write_side(Start start) {
    Result<std::size_t> r = std::size_t{0};
    {
      std::lock_guard w(write_mutex);
      Status st;
      {
        std::lock_guard l(core_mutex);
        st = start();
      }
      r = st ? run(Lane::write) : Result<std::size_t>(st.error());
    }
    flush_owed();
    return r;
  }

  // What a read left for the write side (an alert, a KeyUpdate, OpenSSL's answer), as far as
  // the socket takes it now: a read does not wait for a peer to make room. What remains goes
  // ahead of the next write or close; a writer holding the write side sends it before its
  // next data, or here once it is done.
  void flush_owed() {
    std::unique_lock w(write_mutex, std::try_to_lock);
    if (!w.owns_lock()) return;
    {
      std::lock_guard l(core_mutex);
      if (!core.owes_writes() || !core.flush(/*wait=*/false)) return;
    }
    (void)run(Lane::write, std::nullopt, /*wait=*/false);  // best effort
  }
};

namespace {

Result<std::unique_ptr<Connection::Impl>> establish(UniqueFd fd, Result<ConnectionCore> core,
                                                    const ConnectionOptions& options) {
  if (!core) return core.error();
  auto impl = std::make_unique<Connection::Impl>(std::move(fd), std::move(*core), options);
  if (Status st = impl->core.handshake(); !st) return st.error();
  auto r = impl->run(Lane::write, deadline_after(options.handshake_timeout));
  if (!r) return r.error();
  return impl;
}

}  // namespace

Connection::Connection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() = default;

Result<Connection> Connection::connect(UniqueFd tcp, const TlsContext& ctx,
                                       std::string_view server_name,
                                       const ConnectionOptions& options) {
  auto impl = establish(std::move(tcp), ConnectionCore::client(ctx, server_name, options), options);
  if (!impl) return impl.error();
  return Connection(std::move(*impl));
}

Result<Connection> Connection::accept(UniqueFd tcp, const TlsContext& ctx,
                                      const ConnectionOptions& options) {
  auto impl = establish(std::move(tcp), ConnectionCore::server(ctx, options), options);
  if (!impl) return impl.error();
  return Connection(std::move(*impl));
}

Result<Connection> Connection::with_keys(UniqueFd tcp, const TrafficKeys& keys, Role role,
                                         const ConnectionOptions& options) {
  auto impl = establish(std::move(tcp), ConnectionCore::with_keys(keys, role, options), options);
  if (!impl) return impl.error();
  return Connection(std::move(*impl));
}

Result<std::size_t> Connection::read(std::span<std::uint8_t> buf) {
  Result<std::size_t> r = std::size_t{0};
  {
    std::lock_guard rl(impl_->read_mutex);
    Status st;
    {
      std::lock_guard l(impl_->core_mutex);
      st = impl_->core.read(buf);
    }
    r = st ? impl_->run(Lane::read) : Result<std::size_t>(st.error());
  }
  impl_->flush_owed();
  return r;
}

Result<std::size_t> Connection::read_full(std::span<std::uint8_t> buf) {
  std::size_t got = 0;
  while (got < buf.size()) {
    auto n = read(buf.subspan(got));
    if (!n) return n.error();
    if (*n == 0) break;
    got += *n;
  }
  return got;
}

Status Connection::write(std::span<const std::uint8_t> data) {
  auto r = impl_->write_side([&] { return impl_->core.write(data); });
  if (!r) return r.error();
  return {};
}

Status Connection::close() {
  auto r = impl_->write_side([&] { return impl_->core.close(); });
  if (!r) return r.error();
  return {};
}

Transport Connection::transport() const { return impl_->core.transport(); }
const std::string& Connection::transport_reason() const { return impl_->core.transport_reason(); }
const HandshakeInfo& Connection::info() const { return impl_->core.info(); }
std::uint64_t Connection::bytes_read() const {
  std::lock_guard l(impl_->core_mutex);
  return impl_->core.bytes_read();
}
std::uint64_t Connection::bytes_written() const {
  std::lock_guard l(impl_->core_mutex);
  return impl_->core.bytes_written();
}
int Connection::fd() const { return impl_->fd.get(); }

}  // namespace wasi_ktls
