#include <cerrno>

#include "ktls/conn/async_data_path.h"
#include "ktls/conn/kernel_transport.h"

namespace wasi_ktls {
namespace {

// Bytes one SEND or splice carries at most: bounds how long one operation holds the socket.
constexpr std::size_t kMaxSendChunk = 4u << 20;

Error io_error(int result, const char* what, std::chrono::milliseconds timeout) {
  if (result == -ETIME)
    return Error{fmt::format("timed out {} (after {} ms)", what, timeout.count()), ETIMEDOUT};
  if (result == -ECANCELED) return Error{fmt::format("cancelled while {}", what), ECANCELED};
  return errno_error(-result, fmt::format("kTLS {}", what));
}

}  // namespace

KernelDataPath::KernelDataPath(AsyncConnection& c, const TrafficKeys& keys, bool kernel_can_rekey)
    : c_(c),
      keys_(std::make_shared<TrafficKeys>(keys)),
      io_(c.fd(), record_io_config(keys_, kernel_can_rekey, c.options_.tx_record_limit)) {}

void KernelDataPath::read(std::span<std::uint8_t> buf, AsyncConnection::IoDone done) {
  if (io_.dead()) return done(*io_.dead());
  if (io_.peer_closed() || buf.empty()) return done(std::size_t{0});
  if (std::size_t n = io_.take_pending(buf); n > 0) return done(n);
  if (c_.aborted_) return done(Error{"connection aborted", ECANCELED});
  auto self = c_.shared_from_this();
  Status st = c_.engine_.recv(
      c_.fd(), buf, 0, c_.io_deadline(), [this, self, buf, done](int r) {
        if (r == -ETIME || r == -ECANCELED)
          return done(io_error(r, "reading", c_.options_.io_timeout));
        // EIO: the next record is not data; the kernel keeps it queued for a RECVMSG with room
        // for its record-type cmsg.
        if (r == -EIO) return read_control_record(buf, done);
        deliver(io_.complete_recv(r, buf), buf, done);
      });
  if (!st) done(st.error());
}

void KernelDataPath::read_control_record(std::span<std::uint8_t> buf,
                                         AsyncConnection::IoDone done) {
  auto self = c_.shared_from_this();
  Status st = c_.engine_.recvmsg(
      c_.fd(), io_.control_msghdr(), 0, c_.io_deadline(), [this, self, buf, done](int r) {
        if (r == -ETIME || r == -ECANCELED)
          return done(io_error(r, "reading", c_.options_.io_timeout));
        deliver(io_.complete_control_recv(r, buf), buf, done);
      });
  if (!st) done(st.error());
}

void KernelDataPath::deliver(Result<std::optional<RecvResult>> got, std::span<std::uint8_t> buf,
                             AsyncConnection::IoDone done) {
  if (!got) return done(got.error());
  if (!*got) return read(buf, std::move(done));  // a control record was consumed: read on
  done((*got)->kind == RecvResult::Kind::end_of_stream ? std::size_t{0} : (*got)->bytes);
}

Result<std::size_t> KernelDataPath::budget(std::size_t want) {
  std::size_t n = io_.sendable_bytes(want);
  if (n > 0) return n;
  if (Status s = io_.at_record_limit(); !s) return s.error();  // closes, or rekeys TX
  n = io_.sendable_bytes(want);
  if (n == 0) return make_error("AEAD record limit reached");
  return n;
}

void KernelDataPath::write(std::span<const std::uint8_t> data, AsyncConnection::IoDone done) {
  if (io_.dead()) return done(*io_.dead());
  write_from(data, 0, std::move(done));
}

void KernelDataPath::write_from(std::span<const std::uint8_t> rest, std::size_t sent,
                                AsyncConnection::IoDone done) {
  if (rest.empty()) return done(sent);
  if (c_.aborted_) return done(Error{"connection aborted", ECANCELED});
  auto chunk = budget(std::min(rest.size(), kMaxSendChunk));
  if (!chunk) return done(chunk.error());
  auto self = c_.shared_from_this();
  // Straight from the caller's memory: the kernel encrypts from these pages. One send in
  // flight per connection, the next started from this one's completion, so records keep
  // their order and an open record is never shared.
  Status st = c_.engine_.send(
      c_.fd(), rest.first(*chunk), MSG_NOSIGNAL, c_.io_deadline(),
      [this, self, rest, sent, done](int r) {
        if (r <= 0) return done(io_error(r == 0 ? -EPIPE : r, "writing", c_.options_.io_timeout));
        auto n = static_cast<std::size_t>(r);
        io_.complete_send(n);
        write_from(rest.subspan(n), sent + n, done);
      });
  if (!st) done(st.error());
}

void KernelDataPath::send_file(int file, std::uint64_t offset, std::uint64_t len,
                               AsyncConnection::IoDone done) {
  if (io_.dead()) return done(*io_.dead());
  send_file_from(file, offset, len, 0, std::move(done));
}

void KernelDataPath::send_file_from(int file, std::uint64_t offset, std::uint64_t left,
                                    std::uint64_t sent, AsyncConnection::IoDone done) {
  if (left == 0) return done(static_cast<std::size_t>(sent));
  if (c_.aborted_) return done(Error{"connection aborted", ECANCELED});
  auto chunk = budget(static_cast<std::size_t>(std::min<std::uint64_t>(left, kMaxSendChunk)));
  if (!chunk) return done(chunk.error());
  auto self = c_.shared_from_this();
  Status st = c_.engine_.send_file(
      c_.fd(), file, offset, *chunk, c_.io_deadline(),
      [this, self, file, offset, left, sent, done](int r) {
        if (r < 0) return done(io_error(r, "sending a file", c_.options_.io_timeout));
        if (r == 0)
          return done(make_error("file ended at offset {} with {} bytes still to send", offset,
                                 left));
        auto n = static_cast<std::size_t>(r);
        io_.complete_send(n);
        send_file_from(file, offset + n, left - n, sent + n, done);
      });
  if (!st) done(st.error());
}

void KernelDataPath::close(AsyncConnection::Done done) {
  // close_notify is one small record: a synchronous sendmsg (bounded by SO_SNDTIMEO) with
  // no write in flight, so it cannot overtake data.
  done(io_.close_notify());
}

}  // namespace wasi_ktls
