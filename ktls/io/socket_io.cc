#include "ktls/io/socket_io.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

namespace wasi_ktls {
namespace {

// Waits for `events` on fd until the deadline; an error if it passes.
Status wait_for(int fd, short events, Deadline deadline, const char* what) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Error{fmt::format("timed out {}", what), ETIMEDOUT};
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r > 0) return {};
    if (r < 0 && errno != EINTR) return errno_error(errno, fmt::format("poll while {}", what));
  }
}

}  // namespace

Status send_all(int fd, std::span<const std::uint8_t> data, Deadline deadline) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      data = data.subspan(static_cast<std::size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return errno_error(errno, "send");
    if (auto w = wait_for(fd, POLLOUT, deadline, "sending"); !w) return w;
  }
  return {};
}

Result<std::size_t> recv_some(int fd, std::span<std::uint8_t> buf, Deadline deadline,
                              const char* what) {
  for (;;) {
    ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return errno_error(errno, fmt::format("recv while {}", what));
    if (auto w = wait_for(fd, POLLIN, deadline, what); !w) return w.error();
  }
}

Status set_socket_timeouts(int fd, std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
    return errno_error(errno, "setsockopt SO_RCVTIMEO/SO_SNDTIMEO");
  return {};
}

}  // namespace wasi_ktls
