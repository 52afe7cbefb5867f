#include "tests/support/raw_records.h"

#include <doctest/doctest.h>

#include <cerrno>

#include "ktls/record/record_msg.h"

namespace wasi_ktls::test {

Status try_send_record(int fd, std::uint8_t type, std::span<const std::uint8_t> payload) {
  RecordMsg msg;
  const ssize_t n = ::sendmsg(fd, msg.to_send(type, payload), MSG_NOSIGNAL);
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
