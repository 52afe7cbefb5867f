#include "ktls/conn/kernel_transport.h"

#include <cerrno>

#include "handshake/key_schedule.h"

namespace wasi_ktls {

RecordIoConfig record_io_config(const std::shared_ptr<TrafficKeys>& keys, bool kernel_can_rekey,
                                std::uint64_t tx_record_limit) {
  RecordIoConfig c;
  c.version = keys->version;
  c.cipher = keys->cipher;
  c.tx_seq = keys->tx.seq;
  c.rx_seq = keys->rx.seq;
  c.kernel_can_rekey = kernel_can_rekey;
  c.tx_record_limit = tx_record_limit;
  if (keys->version == TlsVersion::tls13) {
    c.next_keys = [keys](Direction d) -> Result<DirectionKeys> {
      DirectionKeys& current = d == Direction::tx ? keys->tx : keys->rx;
      auto next = tls13_next_direction_keys(keys->cipher, current);
      if (next) current = *next;
      return next;
    };
  }
  return c;
}

namespace {

// SO_RCVTIMEO/SO_SNDTIMEO expiring surfaces as EAGAIN; say what it means, in the same words
// as the userspace transport.
Error timeout_or(Error e, const char* what) {
  if (e.sys_errno != EAGAIN && e.sys_errno != EWOULDBLOCK) return e;
  return Error{std::string("timed out ") + what + " (" + e.message + ")", ETIMEDOUT};
}

}  // namespace

KernelTransport::KernelTransport(int fd, const TrafficKeys& keys, bool kernel_can_rekey,
                                 std::uint64_t tx_record_limit)
    : keys_(std::make_shared<TrafficKeys>(keys)),
      io_(fd, record_io_config(keys_, kernel_can_rekey, tx_record_limit)) {}

Result<std::size_t> KernelTransport::read(std::span<std::uint8_t> buf) {
  auto r = io_.recv(buf);
  if (!r) return timeout_or(r.error(), "reading");
  return r->kind == RecvResult::Kind::end_of_stream ? std::size_t{0} : r->bytes;
}

Status KernelTransport::write(std::span<const std::uint8_t> data) {
  while (!data.empty()) {
    auto n = io_.send(data);
    if (!n) return timeout_or(n.error(), "writing");
    data = data.subspan(*n);
  }
  return {};
}

Status KernelTransport::close() { return io_.close_notify(); }

}  // namespace wasi_ktls
