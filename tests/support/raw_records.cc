#include "tests/support/raw_records.h"

#include <doctest/doctest.h>

#include <cerrno>

#include "ktls/record/tls_uapi.h"

namespace wasi_ktls::test {

Status try_send_record(int fd, std::uint8_t type, std::span<const std::uint8_t> payload) {
  alignas(cmsghdr) unsigned char cbuf[CMSG_SPACE(1)] = {};
  iovec iov{const_cast<std::uint8_t*>(payload.data()), payload.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof(cbuf);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_TLS;
  c->cmsg_type = TLS_SET_RECORD_TYPE;
  c->cmsg_len = CMSG_LEN(1);
  *CMSG_DATA(c) = type;
  const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
  if (n < 0) return errno_error(errno, "sendmsg of a raw record");
  if (static_cast<std::size_t>(n) != payload.size())
    return make_error("sendmsg of a raw record sent {} of {} bytes", n, payload.size());
  return {};
}

void send_record(int fd, std::uint8_t type, std::span<const std::uint8_t> payload) {
  Status s = try_send_record(fd, type, payload);
  REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
}

}  // namespace wasi_ktls::test
