#include "wasi_binding/streams/socket_space.h"

#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace wasi_ktls::wasi {

bool fd_ready(int fd, short events) {
  pollfd p{fd, events, 0};
  int rc;
  do rc = ::poll(&p, 1, 0);
  while (rc < 0 && errno == EINTR);
  return rc > 0 && (p.revents & (events | POLLERR | POLLHUP | POLLNVAL)) != 0;
}

std::uint64_t socket_send_space(int fd, std::uint64_t cap) {
  if (!fd_ready(fd, POLLOUT)) return 0;
  int sndbuf = 0;
  socklen_t len = sizeof sndbuf;
  int queued = 0;
  if (::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) != 0 ||
      ::ioctl(fd, SIOCOUTQ, &queued) != 0)
    return std::min<std::uint64_t>(cap, 16 * 1024);
  // The kernel doubles SO_SNDBUF for its bookkeeping; half of what is left is payload room.
  const long room = (static_cast<long>(sndbuf) - queued) / 2;
  // Writable by poll(2) yet little room by this estimate: one record's worth still goes.
  return std::min<std::uint64_t>(cap, static_cast<std::uint64_t>(std::max(room, 16L * 1024)));
}

}  // namespace wasi_ktls::wasi
