#include "wasi_binding/streams/stdio_streams.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "wasi_binding/streams/socket_space.h"

namespace wasi_ktls::wasi {

int write_fully(int fd, std::span<const std::uint8_t> data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // A non-blocking stdio fd (shared with another process): wait for it, bounded by
      // nothing but the reader, as any command-line tool's output is.
      pollfd p{fd, POLLOUT, 0};
      (void)::poll(&p, 1, -1);
      continue;
    }
    if (n <= 0) return n == 0 ? EIO : errno;
    data = data.subspan(static_cast<std::size_t>(n));
  }
  return 0;
}

StreamResult StdinStream::read(std::span<std::uint8_t> into) {
  if (!ended_.is_ok()) return ended_;
  if (into.empty() || !fd_ready(0, POLLIN)) return StreamResult::ok_n(0);
  for (;;) {
    const ssize_t n = ::read(0, into.data(), into.size());
    if (n > 0) return StreamResult::ok_n(static_cast<std::uint64_t>(n));
    if (n == 0) return ended_ = StreamResult::closed();
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return StreamResult::ok_n(0);
    return ended_ = StreamResult::failed(std::string("stdin: ") + std::strerror(errno));
  }
}

bool StdinStream::ready() { return !ended_.is_ok() || fd_ready(0, POLLIN); }
Wait StdinStream::wait() { return Wait::on(0, POLLIN); }

StreamResult StdioOutput::check_write() {
  if (!ended_.is_ok()) return ended_;
  return StreamResult::ok_n(1 << 20);
}

StreamResult StdioOutput::write(std::span<const std::uint8_t> data) {
  if (!ended_.is_ok()) return ended_;
  if (const int err = write_fully(fd_, data); err != 0) {
    ended_ = err == EPIPE ? StreamResult::closed()
                          : StreamResult::failed(std::string("write: ") + std::strerror(err));
    return ended_;
  }
  return StreamResult::ok_n(data.size());
}

}  // namespace wasi_ktls::wasi
