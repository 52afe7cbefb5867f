#include "wasi_binding/streams/tcp_streams.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "wasi_binding/streams/socket_space.h"

namespace wasi_ktls::wasi {
namespace {

constexpr std::uint64_t kMaxPermit = 4 << 20;

std::string errno_text(int err, const char* what) {
  return std::string(what) + ": " + std::strerror(err);
}

}  // namespace

StreamResult TcpInput::read(std::span<std::uint8_t> into) {
  if (!ended_.is_ok()) return ended_;
  if (into.empty()) return StreamResult::ok_n(0);
  for (;;) {
    const ssize_t n = ::recv(fd_->get(), into.data(), into.size(), MSG_DONTWAIT);
    if (n > 0) return StreamResult::ok_n(static_cast<std::uint64_t>(n));
    if (n == 0) return ended_ = StreamResult::closed();
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return StreamResult::ok_n(0);
    return ended_ = StreamResult::failed(errno_text(errno, "TCP recv"));
  }
}

bool TcpInput::ready() {
  if (!ended_.is_ok()) return true;
  if (!fd_ready(fd_->get(), POLLIN)) return false;
  // Readable may mean the peer's FIN or an error: found out here, so a read that follows
  // allocates guest memory only for bytes.
  std::uint8_t b;
  const ssize_t n = ::recv(fd_->get(), &b, 1, MSG_DONTWAIT | MSG_PEEK);
  if (n > 0) return true;
  if (n == 0) {
    ended_ = StreamResult::closed();
    return true;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return false;
  ended_ = StreamResult::failed(errno_text(errno, "TCP recv"));
  return true;
}

Wait TcpInput::wait() { return Wait::on(fd_->get(), POLLIN); }

StreamResult TcpOutput::fail(int err) {
  // The peer is gone (EPIPE after its reset or our shutdown): the stream is closed.
  if (err == EPIPE) return ended_ = StreamResult::closed();
  return ended_ = StreamResult::failed(errno_text(err, "TCP send"));
}

StreamResult TcpOutput::send_pending() {
  while (!pending_.empty()) {
    const auto bytes = pending_.readable();
    const ssize_t n = ::send(fd_->get(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      pending_.consume(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return StreamResult::ok_n(0);
    return fail(n == 0 ? EPIPE : errno);
  }
  return StreamResult::ok_n(0);
}

StreamResult TcpOutput::check_write() {
  if (!ended_.is_ok()) return ended_;
  if (StreamResult r = send_pending(); !r.is_ok()) return r;
  if (!pending_.empty()) return StreamResult::ok_n(0);
  return StreamResult::ok_n(socket_send_space(fd_->get(), kMaxPermit));
}

StreamResult TcpOutput::write(std::span<const std::uint8_t> data) {
  if (!ended_.is_ok()) return ended_;
  std::size_t sent = 0;
  while (pending_.empty() && sent < data.size()) {
    const ssize_t n = ::send(fd_->get(), data.data() + sent, data.size() - sent,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return fail(n == 0 ? EPIPE : errno);
  }
  // Only what the socket would not take now is copied.
  pending_.append(data.subspan(sent));
  return StreamResult::ok_n(data.size());
}

StreamResult TcpOutput::flush() {
  if (!ended_.is_ok()) return ended_;
  return send_pending();
}

bool TcpOutput::flushed() { return pending_.empty() || !ended_.is_ok(); }

bool TcpOutput::ready() {
  if (!ended_.is_ok()) return true;
  (void)send_pending();
  return !ended_.is_ok() || (pending_.empty() && fd_ready(fd_->get(), POLLOUT));
}

Wait TcpOutput::wait() { return Wait::on(fd_->get(), POLLOUT); }

}  // namespace wasi_ktls::wasi
