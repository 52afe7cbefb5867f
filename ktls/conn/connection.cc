#include "ktls/conn/connection.h"

#include "ktls/conn/handshake_driver.h"
#include "ktls/conn/handover.h"
#include "ktls/conn/kernel_transport.h"
#include "ktls/probe/probe.h"
#include "ktls/io/socket_io.h"
#include "ktls/conn/userspace_transport.h"

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

Result<Connection::Impl> establish(UniqueFd fd, Session session,
                                   const ConnectionOptions& options) {
  if (auto st = set_socket_timeouts(fd.get(), options.io_timeout); !st) return st.error();
  if (auto st = run_handshake(fd.get(), session, deadline_after(options.handshake_timeout)); !st)
    return st.error();

  auto handover = hand_over(fd.get(), session, options.backend);
  if (!handover) return handover.error();
  Connection::Impl c;
  c.info = session.info();
  c.transport = handover->transport;
  c.reason = std::move(handover->reason);
  if (handover->transport == Transport::kernel)
    c.io = std::make_unique<KernelTransport>(fd.get(), *handover->keys, kernel_probe().rekey.ok,
                                             options.tx_record_limit);
  else
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
