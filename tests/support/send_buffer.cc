#include "tests/support/send_buffer.h"

#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

namespace wasi_ktls::test {
namespace {

// Sends until the kernel takes not even one more byte; whether anything went.
bool fill(int fd) {
  static const std::vector<std::uint8_t> chunk(64 * 1024, 0xee);
  bool sent = false;
  for (std::size_t size : {chunk.size(), std::size_t{1}}) {
    for (;;) {
      const ssize_t n = ::send(fd, chunk.data(), size, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        sent = true;
        continue;
      }
      REQUIRE_MESSAGE((errno == EAGAIN || errno == EWOULDBLOCK), std::strerror(errno));
      break;
    }
  }
  return sent;
}

}  // namespace

void fill_until_stalled(int fd) {
  // Stalled: three rounds in a row, 100 ms apart, in which not one byte more fits (the
  // peer's window has closed; nothing is acknowledged any more).
  int quiet = 0;
  for (int round = 0; round < 300 && quiet < 3; ++round) {
    quiet = fill(fd) ? 0 : quiet + 1;
    pollfd p{fd, POLLOUT, 0};
    REQUIRE(::poll(&p, 1, 100) >= 0);
  }
  REQUIRE_MESSAGE(quiet >= 3, "the connection kept draining: its send buffer never stayed full");
}

}  // namespace wasi_ktls::test
