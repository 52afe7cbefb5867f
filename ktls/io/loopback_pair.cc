#include "ktls/io/loopback_pair.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

namespace wasi_ktls {
namespace {

// Waits for `events` on `fd`, retrying EINTR; ETIMEDOUT when nothing came within `timeout`.
Status wait_for(int fd, short events, std::chrono::milliseconds timeout, const char* what) {
  pollfd p{fd, events, 0};
  for (;;) {
    int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (n > 0) return {};
    if (n == 0) return errno_error(ETIMEDOUT, what);
    if (errno != EINTR) return errno_error(errno, what);
  }
}

Status set_blocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
    return errno_error(errno, "fcntl(O_NONBLOCK off)");
  return {};
}

}  // namespace

Result<LoopbackPair> make_loopback_pair(std::chrono::milliseconds timeout) {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener) return errno_error(errno, "socket(listener)");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;  // ephemeral
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
    return errno_error(errno, "bind(127.0.0.1:0)");
  if (::listen(listener.get(), 1) < 0) return errno_error(errno, "listen");
  socklen_t len = sizeof addr;
  if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) < 0)
    return errno_error(errno, "getsockname");

  // Non-blocking connect so that the wait is ours to bound.
  UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!client) return errno_error(errno, "socket(client)");
  if (::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    if (errno != EINPROGRESS) return errno_error(errno, "connect(127.0.0.1)");
    if (auto s = wait_for(client.get(), POLLOUT, timeout, "connect(127.0.0.1)"); !s) return s.error();
    int err = 0;
    socklen_t elen = sizeof err;
    if (::getsockopt(client.get(), SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
      return errno_error(errno, "getsockopt(SO_ERROR)");
    if (err != 0) return errno_error(err, "connect(127.0.0.1)");
  }

  if (auto s = wait_for(listener.get(), POLLIN, timeout, "accept"); !s) return s.error();
  UniqueFd server(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!server) return errno_error(errno, "accept");
  listener.reset();

  if (auto s = set_blocking(client.get()); !s) return s.error();
  return LoopbackPair{std::move(client), std::move(server)};
}

}  // namespace wasi_ktls
