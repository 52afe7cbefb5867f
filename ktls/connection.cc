#include "ktls/connection.h"

#include "ktls/handshake_driver.h"
#include "ktls/install.h"
#include "ktls/kernel_transport.h"
#include "ktls/probe.h"
#include "ktls/socket_io.h"
#include "ktls/userspace_transport.h"

namespace wasi_ktls {

struct Connection::Impl {
  UniqueFd fd;
  std::unique_ptr<TransportIo> io;
  Transport transport = Transport::userspace;
  std::string reason;
  HandshakeInfo info;
  std::uint64_t bytes_read = 0;
  std::uint64_t bytes_written = 0;
};

namespace {

// Why the kernel cannot carry this connection, or nullopt if it can.
std::optional<std::string> kernel_refusal(const Session& session) {
  const HandshakeInfo& info = session.info();
  if (!info.cipher)
    return fmt::format("negotiated suite {} has no kernel TLS cipher", info.suite);
  if (info.max_fragment_length)
    return std::string("peer negotiated max_fragment_length; the kernel sends 16 KiB records");
  if (auto why = kernel_probe().refusal(info.version, *info.cipher)) return why;
  if (session.has_unconsumed_input())
    return std::string("bytes past the handshake are buffered in userspace");
  if (!session.pending_output().empty())
    return std::string("handshake output not yet sent");
  return std::nullopt;
}

Result<Connection::Impl> establish(UniqueFd fd, Session session,
                                   const ConnectionOptions& options) {
  if (auto st = set_socket_timeouts(fd.get(), options.io_timeout); !st) return st.error();
  if (auto st = run_handshake(fd.get(), session, deadline_after(options.handshake_timeout)); !st)
    return st.error();

  Connection::Impl c;
  c.info = session.info();
  auto decision = decide_backend(options.backend, kernel_refusal(session));
  if (!decision) return decision.error();

  if (decision->transport == Transport::kernel) {
    auto keys = session.take_keys();
    std::optional<std::string> refused;
    if (!keys) {
      refused = "cannot extract keys for the kernel: " + keys.error().message;
    } else {
      InstallResult installed = install_kernel_tls(fd.get(), *keys);
      if (installed.ok()) {
        c.io = std::make_unique<KernelTransport>(fd.get(), *keys, kernel_probe().rekey.ok,
                                                 options.tx_record_limit);
        c.transport = Transport::kernel;
        c.fd = std::move(fd);
        return c;
      }
      if (installed.outcome == InstallResult::Outcome::connection_broken)
        return Error{"kernel TLS install failed half-way, connection closed: " +
                         installed.error.message,
                     installed.error.sys_errno};
      refused = "kernel refused the keys: " + installed.error.message;
    }
    // Nothing reached the kernel's record layer: the socket is still plain TCP.
    auto fallback = decide_backend(options.backend, refused);
    if (!fallback) return fallback.error();
    decision = std::move(fallback);
  }
  c.reason = decision->reason;
  c.transport = Transport::userspace;
  c.io = std::make_unique<UserspaceTransport>(fd.get(), std::move(session), options.io_timeout);
  c.fd = std::move(fd);
  return c;
}

}  // namespace

Connection::Connection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() {
  if (impl_) impl_->io.reset();  // before the fd it uses closes
}

Result<Connection> Connection::connect(UniqueFd tcp, const TlsContext& ctx,
                                       std::string_view server_name,
                                       const ConnectionOptions& options) {
  auto session = Session::client(ctx, server_name);
  if (!session) return session.error();
  auto impl = establish(std::move(tcp), std::move(*session), options);
  if (!impl) return impl.error();
  return Connection(std::make_unique<Impl>(std::move(*impl)));
}

Result<Connection> Connection::accept(UniqueFd tcp, const TlsContext& ctx,
                                      const ConnectionOptions& options) {
  auto session = Session::server(ctx);
  if (!session) return session.error();
  auto impl = establish(std::move(tcp), std::move(*session), options);
  if (!impl) return impl.error();
  return Connection(std::make_unique<Impl>(std::move(*impl)));
}

Result<std::size_t> Connection::read(std::span<std::uint8_t> buf) {
  if (buf.empty()) return std::size_t{0};
  auto n = impl_->io->read(buf);
  if (n) impl_->bytes_read += *n;
  return n;
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
  auto st = impl_->io->write(data);
  if (st) impl_->bytes_written += data.size();
  return st;
}

Status Connection::close() { return impl_->io->close(); }

Transport Connection::transport() const { return impl_->transport; }
const std::string& Connection::transport_reason() const { return impl_->reason; }
const HandshakeInfo& Connection::info() const { return impl_->info; }
std::uint64_t Connection::bytes_read() const { return impl_->bytes_read; }
std::uint64_t Connection::bytes_written() const { return impl_->bytes_written; }
int Connection::fd() const { return impl_->fd.get(); }

}  // namespace wasi_ktls
