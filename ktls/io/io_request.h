// One started operation as Engine's public methods (engine.cc) describe it to an engine:
// what to do, on which fd, with what, until when, and whom to tell. Built in one place, so
// the engines only carry requests out.
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

#include "ktls/io/engine.h"

namespace wasi_ktls {

struct IoRequest {
  enum class Kind : std::uint8_t {
    recv, send, recvmsg, sendmsg, send_file, accept, connect, timer, poll
  };

  Kind kind = Kind::timer;
  int fd = -1;              // the socket (send_file: `sock`); -1 for a timer
  void* buf = nullptr;      // recv, send (send only reads it)
  std::size_t len = 0;      // recv, send; send_file: bytes still to send (engines count down)
  int flags = 0;            // recv(2)/send(2)-style flags as the caller gave them; poll: events
  msghdr* msg = nullptr;    // recvmsg, sendmsg (sendmsg only reads it)
  int file = -1;            // send_file
  std::uint64_t offset = 0;  // send_file: the next byte's place in `file` (engines count up)
  sockaddr_storage addr{};  // connect: a copy, as the op may start after connect() returns
  socklen_t addrlen = 0;
  Clock::time_point deadline = kNoDeadline;  // a timer's `when`
  Completion done;
};

// Operations on one fd are ordered per direction: in (recv, recvmsg, accept, poll for POLLIN)
// and out (send, sendmsg, send_file, connect, poll for POLLOUT). A timer has no fd: -1.
inline constexpr int kIn = 0;
inline constexpr int kOut = 1;

constexpr int direction(const IoRequest& r) {
  switch (r.kind) {
    case IoRequest::Kind::recv:
    case IoRequest::Kind::recvmsg:
    case IoRequest::Kind::accept:
      return kIn;
    case IoRequest::Kind::timer:
      return -1;
    case IoRequest::Kind::poll:
      return (r.flags & POLLOUT) != 0 ? kOut : kIn;
    default:
      return kOut;
  }
}

}  // namespace wasi_ktls
