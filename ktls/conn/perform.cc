#include "ktls/conn/perform.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "ktls/record/install.h"

namespace wasi_ktls {

short Step::poll_events() const {
  return kind == Kind::recv || kind == Kind::recvmsg ? POLLIN : POLLOUT;
}

namespace {

long result_of(ssize_t r) { return r >= 0 ? static_cast<long>(r) : -errno; }

}  // namespace

long perform_now(int fd, const Step& s) {
  long r = 0;
  do {
    switch (s.kind) {
      case Step::Kind::send:
        r = result_of(::send(fd, s.out.data(), s.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT));
        break;
      case Step::Kind::recv:
        r = result_of(::recv(fd, s.in.data(), s.in.size(), MSG_DONTWAIT));
        break;
      case Step::Kind::recvmsg:
        r = result_of(::recvmsg(fd, s.msg, MSG_DONTWAIT));
        break;
      case Step::Kind::sendmsg:
        r = result_of(::sendmsg(fd, s.msg, MSG_NOSIGNAL | MSG_DONTWAIT));
        break;
      case Step::Kind::splice:
        return -EOPNOTSUPP;
      case Step::Kind::pread:
        r = result_of(::pread(s.file, s.in.data(), s.in.size(), static_cast<off_t>(s.offset)));
        break;
      case Step::Kind::tcp_state:
        return tcp_state(fd);
      case Step::Kind::attach_ulp:
        return attach_tls_ulp(fd);
      case Step::Kind::set_key:
        return set_kernel_key(fd, s.key_direction, *s.key);
      case Step::Kind::tx_seq: {
        auto info = read_kernel_crypto_info(fd, Direction::tx);
        if (!info) return -(info.error().sys_errno != 0 ? info.error().sys_errno : EIO);
        return static_cast<long>(info->rec_seq());
      }
      case Step::Kind::shutdown_write:
        r = result_of(::shutdown(fd, SHUT_WR));
        break;
      case Step::Kind::take_error: {
        int err = 0;
        socklen_t len = sizeof err;
        r = result_of(::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len));
        if (r == 0) return err;
        break;
      }
      case Step::Kind::done:
        return 0;
    }
  } while (r == -EINTR);
  return r;
}

}  // namespace wasi_ktls
