#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "ktls/conn/async_data_path.h"

namespace wasi_ktls {
namespace {

constexpr std::size_t kRecvChunk = 256 * 1024;   // ciphertext per RECV
constexpr std::size_t kWriteChunk = 256 * 1024;  // plaintext encrypted per step
constexpr std::size_t kFileChunk = 256 * 1024;   // file bytes read per step

Error io_error(int result, const char* what, std::chrono::milliseconds timeout) {
  if (result == -ETIME)
    return Error{fmt::format("timed out {} (after {} ms)", what, timeout.count()), ETIMEDOUT};
  if (result == -ECANCELED) return Error{fmt::format("cancelled while {}", what), ECANCELED};
  return errno_error(-result, what);
}

}  // namespace

UserspaceDataPath::UserspaceDataPath(AsyncConnection& c, Session session)
    : c_(c), session_(std::move(session)) {}

void UserspaceDataPath::pump(AsyncConnection::Done flushed) {
  if (flushed) flush_waiters_.push_back(std::move(flushed));
  if (send_in_flight_) return;
  if (session_.pending_output().empty()) {
    auto waiters = std::move(flush_waiters_);
    flush_waiters_.clear();
    for (auto& w : waiters) w(Status{});
    return;
  }
  session_.take_output(sending_);
  send_in_flight_ = true;
  send_from(0);
}

void UserspaceDataPath::send_from(std::size_t offset) {
  auto fail = [this](Error e) {
    send_in_flight_ = false;
    auto waiters = std::move(flush_waiters_);
    flush_waiters_.clear();
    for (auto& w : waiters) w(e);
  };
  if (c_.aborted_) return fail(Error{"connection aborted", ECANCELED});
  auto self = c_.shared_from_this();
  Status st = c_.engine_.send(
      c_.fd(), std::span<const std::uint8_t>(sending_).subspan(offset), MSG_NOSIGNAL,
      c_.io_deadline(), [this, self, offset, fail](int r) {
        if (r <= 0) return fail(io_error(r == 0 ? -EPIPE : r, "writing", c_.options_.io_timeout));
        std::size_t next = offset + static_cast<std::size_t>(r);
        if (next < sending_.size()) return send_from(next);
        send_in_flight_ = false;
        pump(nullptr);  // what OpenSSL wrote meanwhile; runs the waiters when all is out
      });
  if (!st) fail(st.error());
}

void UserspaceDataPath::read(std::span<std::uint8_t> buf, AsyncConnection::IoDone done) {
  if (buf.empty()) return done(std::size_t{0});
  auto r = session_.read_plaintext(buf);
  // Reading can make OpenSSL answer (a KeyUpdate, an alert): send that along.
  if (!session_.pending_output().empty()) pump(nullptr);
  if (!r) return done(r.error());
  switch (r->kind) {
    case ReadResult::Kind::data: return done(r->bytes);
    case ReadResult::Kind::eof: return done(std::size_t{0});
    case ReadResult::Kind::need_input: break;
  }
  if (c_.aborted_) return done(Error{"connection aborted", ECANCELED});
  auto self = c_.shared_from_this();
  // Ciphertext lands in the session's own input buffer: OpenSSL reads it from there.
  Status st = c_.engine_.recv(
      c_.fd(), session_.input_space(kRecvChunk), 0, c_.io_deadline(),
      [this, self, buf, done](int n) {
        if (n < 0) return done(io_error(n, "reading", c_.options_.io_timeout));
        if (n == 0)
          return done(make_error("peer closed the connection without close_notify (truncation)"));
        session_.commit_input(static_cast<std::size_t>(n));
        read(buf, done);
      });
  if (!st) done(st.error());
}

void UserspaceDataPath::write(std::span<const std::uint8_t> data, AsyncConnection::IoDone done) {
  write_from(data, 0, std::move(done));
}

void UserspaceDataPath::write_from(std::span<const std::uint8_t> rest, std::size_t done_bytes,
                                   AsyncConnection::IoDone done) {
  if (rest.empty()) return done(done_bytes);
  auto chunk = rest.first(std::min(rest.size(), kWriteChunk));
  auto w = session_.write_plaintext(chunk);
  if (!w) return done(w.error());
  auto self = c_.shared_from_this();
  pump([this, self, rest, done_bytes, n = chunk.size(), done](Status st) {
    if (!st) return done(st.error());
    write_from(rest.subspan(n), done_bytes + n, done);
  });
}

void UserspaceDataPath::send_file(int file, std::uint64_t offset, std::uint64_t len,
                                  AsyncConnection::IoDone done) {
  file_buf_.resize(kFileChunk);
  send_file_from(file, offset, len, 0, std::move(done));
}

void UserspaceDataPath::send_file_from(int file, std::uint64_t offset, std::uint64_t left,
                                       std::uint64_t sent, AsyncConnection::IoDone done) {
  if (left == 0) return done(static_cast<std::size_t>(sent));
  // The file is read in userspace and encrypted by OpenSSL: the cost the kernel path avoids.
  auto want = static_cast<std::size_t>(std::min<std::uint64_t>(left, file_buf_.size()));
  ssize_t n;
  do n = ::pread(file, file_buf_.data(), want, static_cast<off_t>(offset));
  while (n < 0 && errno == EINTR);
  if (n < 0) return done(errno_error(errno, "reading the file to send"));
  if (n == 0)
    return done(make_error("file ended at offset {} with {} bytes still to send", offset, left));
  auto got = static_cast<std::size_t>(n);
  auto self = c_.shared_from_this();
  write_from(std::span(file_buf_.data(), got), 0,
             [this, self, file, offset, left, sent, done](Result<std::size_t> w) {
               if (!w) return done(w.error());
               send_file_from(file, offset + *w, left - *w, sent + *w, done);
             });
}

void UserspaceDataPath::close(AsyncConnection::Done done) {
  if (closed_) return done(Status{});
  closed_ = true;
  if (Status st = session_.shutdown(); !st) return done(st);
  auto self = c_.shared_from_this();
  pump([this, self, done](Status st) {
    if (!st) return done(st);
    // ENOTCONN: the peer has already reset the connection; there is no write side left.
    if (::shutdown(c_.fd(), SHUT_WR) != 0 && errno != ENOTCONN)
      return done(errno_error(errno, "shutdown(SHUT_WR)"));
    done(Status{});
  });
}

}  // namespace wasi_ktls
