#include "ktls/io/tcp_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <memory>

namespace wasi_ktls {
namespace {

using Clock = std::chrono::steady_clock;

int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

std::string format_peer(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  std::uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    return fmt::format("{}:{}", host, port);
  }
  auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
  ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
  return fmt::format("[{}]:{}", host, ntohs(a->sin6_port));
}

// Non-blocking connect to one address, bounded by the deadline; blocking on return.
Result<UniqueFd> connect_one(const addrinfo* ai, Clock::time_point deadline) {
  UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                       ai->ai_protocol));
  if (!fd) return errno_error(errno, "socket");
  if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
    if (errno != EINPROGRESS) return errno_error(errno, "connect");
    pollfd p{fd.get(), POLLOUT, 0};
    int r;
    do r = ::poll(&p, 1, ms_left(deadline));
    while (r < 0 && errno == EINTR);
    if (r == 0) return Error{"connect timed out", ETIMEDOUT};
    if (r < 0) return errno_error(errno, "poll during connect");
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return errno_error(err, "connect");
  }
  int flags = ::fcntl(fd.get(), F_GETFL);
  ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

}  // namespace

Result<UniqueFd> tcp_connect(std::string_view host, std::uint16_t port,
                             std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string h(host), p = std::to_string(port);
  if (int rc = ::getaddrinfo(h.c_str(), p.c_str(), &hints, &res); rc != 0)
    return make_error("cannot resolve '{}': {}", host, ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner(res, ::freeaddrinfo);
  Error last = make_error("no address for '{}'", host);
  for (const addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    auto fd = connect_one(ai, deadline);
    if (fd) return fd;
    last = fd.error();
  }
  return Error{fmt::format("cannot connect to {}:{}: {}", host, port, last.message),
               last.sys_errno};
}

namespace {

Result<socklen_t> listen_address(std::string_view address, std::uint16_t port,
                                 sockaddr_storage& ss) {
  std::string a(address);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, a.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    return socklen_t{sizeof *v4};
  }
  if (::inet_pton(AF_INET6, a.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    return socklen_t{sizeof *v6};
  }
  return make_error("listen address '{}' is not an IPv4 or IPv6 address", address);
}

}  // namespace

Status port_in_use(std::string_view address, std::uint16_t port) {
  sockaddr_storage ss{};
  auto len = listen_address(address, port, ss);
  if (!len) return len.error();
  UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return errno_error(errno, "socket");
  // As tcp_listen: a port left in TIME_WAIT by an earlier run is not in use.
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), *len) != 0)
    return errno_error(errno, fmt::format("bind {}:{}", address, port));
  return {};
}

Result<UniqueFd> tcp_listen(std::string_view address, std::uint16_t port, bool reuse_port,
                            int backlog) {
  sockaddr_storage ss{};
  auto addr_len = listen_address(address, port, ss);
  if (!addr_len) return addr_len.error();
  const socklen_t len = *addr_len;
  UniqueFd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return errno_error(errno, "socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    return errno_error(errno, "setsockopt SO_REUSEPORT");
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
    return errno_error(errno, fmt::format("bind {}:{}", address, port));
  if (::listen(fd.get(), backlog) != 0) return errno_error(errno, "listen");
  return fd;
}

Result<std::uint16_t> local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return errno_error(errno, "getsockname");
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

std::string peer_name(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  return format_peer(ss);
}

Result<UniqueFd> tcp_accept(int listen_fd, std::chrono::milliseconds timeout, std::string* peer) {
  if (timeout.count() >= 0) {
    pollfd p{listen_fd, POLLIN, 0};
    int r;
    do r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    while (r < 0 && errno == EINTR);
    if (r == 0) return Error{"no connection to accept before the timeout", ETIMEDOUT};
    if (r < 0) return errno_error(errno, "poll on listening socket");
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int fd;
  do fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return errno_error(errno, "accept");
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (peer != nullptr) *peer = format_peer(ss);
  return UniqueFd(fd);
}

}  // namespace wasi_ktls
