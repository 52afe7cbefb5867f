#include "ktls/record/record_msg.h"

#include <cstring>

#include "handshake/tls_codes.h"
#include "ktls/record/tls_uapi.h"

namespace wasi_ktls {

msghdr* RecordMsg::prepare(void* data, std::size_t len) {
  std::memset(cmsg_, 0, sizeof(cmsg_));
  iov_ = iovec{data, len};
  msg_ = msghdr{};
  msg_.msg_iov = &iov_;
  msg_.msg_iovlen = 1;
  msg_.msg_control = cmsg_;
  msg_.msg_controllen = sizeof(cmsg_);
  return &msg_;
}

msghdr* RecordMsg::to_send(std::uint8_t type, std::span<const std::uint8_t> payload) {
  prepare(const_cast<std::uint8_t*>(payload.data()), payload.size());  // only read
  cmsghdr* c = CMSG_FIRSTHDR(&msg_);
  c->cmsg_level = SOL_TLS;
  c->cmsg_type = TLS_SET_RECORD_TYPE;
  c->cmsg_len = CMSG_LEN(1);
  *CMSG_DATA(c) = type;
  return &msg_;
}

msghdr* RecordMsg::to_receive(std::span<std::uint8_t> buf) {
  return prepare(buf.data(), buf.size());
}

Result<std::uint8_t> RecordMsg::received_type() const {
  if (msg_.msg_flags & MSG_CTRUNC)
    return make_error("kTLS recvmsg: the record-type cmsg was truncated (MSG_CTRUNC)");
  std::uint8_t type = content_type::application_data;
  auto* m = const_cast<msghdr*>(&msg_);  // CMSG_NXTHDR takes a non-const msghdr
  for (cmsghdr* c = CMSG_FIRSTHDR(m); c != nullptr; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level != SOL_TLS || c->cmsg_type != TLS_GET_RECORD_TYPE ||
        c->cmsg_len != CMSG_LEN(1)) {
      return make_error("kTLS recvmsg: unexpected cmsg level {} type {}", c->cmsg_level,
                        c->cmsg_type);
    }
    type = *CMSG_DATA(c);
  }
  return type;
}

}  // namespace wasi_ktls
