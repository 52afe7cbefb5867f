#include "ktls/io/socket_wait.h"

#include <poll.h>

#include <cerrno>

namespace wasi_ktls {

Status wait_ready(int fd, short events, Deadline deadline) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Error{"timed out", ETIMEDOUT, ErrorKind::timeout};
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1 << 30)));
    if (r > 0) return {};
    if (r < 0 && errno != EINTR) return errno_error(errno, "poll");
  }
}

}  // namespace wasi_ktls
