// The kernel's only interface to records that are not application data: a msghdr whose cmsg
// carries the record's content type (sendmsg with TLS_SET_RECORD_TYPE; recvmsg with room for
// TLS_GET_RECORD_TYPE). It points into itself, so it stays where it was made.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstdint>
#include <span>

#include "base/result.h"

namespace wasi_ktls {

class RecordMsg {
 public:
  RecordMsg() = default;
  RecordMsg(const RecordMsg&) = delete;
  RecordMsg& operator=(const RecordMsg&) = delete;

  // For sendmsg: one record of `type` carrying `payload` (which must outlive the call).
  msghdr* to_send(std::uint8_t type, std::span<const std::uint8_t> payload);
  // For recvmsg of one record into `buf`.
  msghdr* to_receive(std::span<std::uint8_t> buf);

  // After recvmsg: the record's content type (application data when the kernel added no
  // cmsg), or what was wrong with the cmsg.
  Result<std::uint8_t> received_type() const;
  int flags() const { return msg_.msg_flags; }

 private:
  msghdr* prepare(void* data, std::size_t len);

  iovec iov_{};
  msghdr msg_{};
  alignas(cmsghdr) unsigned char cmsg_[CMSG_SPACE(1)] = {};
};

}  // namespace wasi_ktls
